from __future__ import annotations

from django.contrib import admin

from ops.admin_base import ReadOnlyAdmin
from ops.health.models import DependencyCheck, DependencyStatus
from ops.health.probes import PROBES


class DependencyFilter(admin.SimpleListFilter):
    """The dependencies are the probes' names: listing them is free, where Django's own
    filter on `name` would read them with a DISTINCT over the whole history."""

    title = "dependency"
    parameter_name = "name__exact"

    def lookups(self, request, model_admin):
        return [(probe.name, probe.name) for probe in PROBES]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


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
    list_filter = (DependencyFilter, "status")
    date_hierarchy = "checked_at"
    # The history grows by five rows a probe cycle (about 100,000 in a week at 30 s):
    # periods by index probes on depcheck_checked_idx, not a DISTINCT scan (ops/admin_dates.py).
    probe_date_hierarchy = True
    show_full_result_count = False
