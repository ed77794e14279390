"""The alert store in the admin: read-only, as Alertmanager delivered it."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ops.alerts.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("starts_at", "alertname", "severity", "status", "summary", "ends_at", "action_event")
    list_filter = ("status", "severity", "alertname")
    search_fields = ("alertname", "fingerprint")
    date_hierarchy = "starts_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
