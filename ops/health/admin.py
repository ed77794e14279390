from __future__ import annotations

from django.contrib import admin

from ops.admin_base import ReadOnlyAdmin
from ops.health.models import DependencyCheck, DependencyStatus


@admin.register(DependencyStatus)
class DependencyStatusAdmin(ReadOnlyAdmin):
    list_display = ("name", "shown_status", "latency_ms", "checked_at", "consecutive_failures", "detail")

    @admin.display(description="status")
    def shown_status(self, obj: DependencyStatus) -> str:
        # Never the stored value alone: a status three intervals old is UNKNOWN.
        return obj.effective_status().upper()


@admin.register(DependencyCheck)
class DependencyCheckAdmin(ReadOnlyAdmin):
    list_display = ("checked_at", "name", "status", "latency_ms", "detail")
    list_filter = ("name", "status")
    date_hierarchy = "checked_at"
    show_full_result_count = False
