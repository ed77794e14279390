"""The alert store in the admin: read-only, as Alertmanager delivered it."""

from __future__ import annotations

from django.contrib import admin

from ops.admin_base import ReadOnlyAdmin
from ops.alerts.models import Alert, SilenceEvent


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("starts_at", "alertname", "severity", "status", "summary", "ends_at", "action_event")
    list_filter = ("status", "severity", "alertname")
    search_fields = ("alertname", "fingerprint")
    date_hierarchy = "starts_at"


@admin.register(SilenceEvent)
class SilenceEventAdmin(ReadOnlyAdmin):
    """Silences made and expired from the console; Alertmanager holds the silences themselves."""

    list_display = (
        "created_at",
        "action",
        "alertname",
        "actor",
        "duration",
        "ends_at",
        "reason",
        "silence_id",
    )
    list_filter = ("action", "alertname")
    search_fields = ("alertname", "actor", "silence_id")
    date_hierarchy = "created_at"
