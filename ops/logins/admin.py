"""Failed logins and lockouts in the admin, for every ops role: read-only. A lockout is
released with `manage.py login_lockouts release`, which records who and why (deleting
the rows here would release it without a trace)."""

from __future__ import annotations

from axes.models import AccessAttempt
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from ops.admin_base import ReadOnlyAdmin
from ops.logins import lockouts


def describe(row: AccessAttempt, lockout: lockouts.Lockout | None) -> str:
    """The state of the row's username, as far as this row still counts towards it."""
    if lockout is None or row.attempt_time < timezone.now() - lockouts.window():
        return "expired: no longer counted"
    if lockout.locked:
        return f"LOCKED OUT until {lockouts.utc(lockout.until)}"
    return f"{lockout.failures} of {lockouts.limit()} failed logins counted"


@admin.register(AccessAttempt)
class LoginAttemptAdmin(ReadOnlyAdmin):
    list_display_links = None
    search_fields = ("=username",)
    search_help_text = "Exact username."
    ordering = ("-attempt_time",)
    fields = (
        "username",
        "status",
        "failures_since_start",
        "last_failure",
        "ip_address",
        "user_agent",
        "path_info",
    )
    readonly_fields = fields

    @admin.display(description="status")
    def status(self, row: AccessAttempt) -> str:
        return describe(row, lockouts.lockout_of(row.username))

    @admin.display(description="last failure (UTC)", ordering="attempt_time")
    def last_failure(self, row: AccessAttempt) -> str:
        return lockouts.utc(row.attempt_time)

    def get_list_display(self, request: HttpRequest):
        # One read of the counted rows per page, not one per row.
        current = {lockout.username: lockout for lockout in lockouts.counted()}

        @admin.display(description="status")
        def status(row: AccessAttempt) -> str:
            return describe(row, current.get(row.username))

        return ("username", status, "failures_since_start", "last_failure", "ip_address", "user_agent")
