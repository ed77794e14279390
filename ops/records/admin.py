"""Records in the admin: analyses (added by hand, never edited) and positions (read-only).

Trades are registered by ops.trading.admin: adding one goes through the pre-trade gate.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ops.admin_base import LargeTableAdmin, ReadOnlyAdmin
from ops.records.models import Analysis, Position


@admin.register(Analysis)
class AnalysisAdmin(LargeTableAdmin):
    list_display = ("analyzed_at", "symbol", "signal", "confidence", "model_version", "price")
    list_filter = ("signal", "analyzed_at")
    date_hierarchy = "analyzed_at"
    search_fields = ("symbol", "model_version")
    exact_search_fields = ("symbol", "model_version")
    upper_case_search_fields = ("symbol",)
    search_help_text = "Exact symbol or model version."
    raw_id_fields = ("api_client",)

    # Analyses are the pipeline's output as it was; like trades, they are not edited.
    def get_readonly_fields(self, request: HttpRequest, obj: Analysis | None = None):
        return [field.name for field in Analysis._meta.fields] if obj else ()

    def has_change_permission(self, request: HttpRequest, obj: Analysis | None = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Analysis | None = None) -> bool:
        return False


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ("strategy", "symbol", "quantity", "updated_at")
    search_fields = ("symbol", "strategy")
