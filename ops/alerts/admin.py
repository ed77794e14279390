"""The alert store in the admin: read-only, as Alertmanager delivered it."""

from __future__ import annotations

from django.contrib import admin

from ops.admin_base import ReadOnlyAdmin
from ops.alerts.models import Alert


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("starts_at", "alertname", "severity", "status", "summary", "ends_at", "action_event")
    list_filter = ("status", "severity", "alertname")
    search_fields = ("alertname", "fingerprint")
    date_hierarchy = "starts_at"
