"""Who is locked out until when, the page a locked login gets, the log lines, the release.

django-axes (settings: AXES_*) records failed logins as AccessAttempt rows, one per
(username, address, browser), each with its count and the time of its last failure. A
row counts while its last failure is within AXES_COOLOFF_TIME; a name is locked while its
counted failures reach AXES_FAILURE_LIMIT. Everything here reads those rows the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

logger = logging.getLogger(__name__)


def window() -> timedelta:
    return settings.AXES_COOLOFF_TIME


def limit() -> int:
    return settings.AXES_FAILURE_LIMIT


@dataclass(frozen=True)
class Lockout:
    """A username's failed logins that count now, and until when it is locked (None: it
    is not, fewer than the limit count)."""

    username: str
    failures: int
    last_failure: datetime
    until: datetime | None
    addresses: tuple[str, ...]

    @property
    def locked(self) -> bool:
        return self.until is not None


def _lockout(username: str, rows: list[AccessAttempt]) -> Lockout:
    rows = sorted(rows, key=lambda row: row.attempt_time)
    failures = sum(row.failures_since_start for row in rows)
    until = None
    if failures >= limit():
        # The lock lifts when enough rows have aged out that the rest count less than the
        # limit: each row stops counting one window after its last failure.
        remaining = failures
        for row in rows:
            remaining -= row.failures_since_start
            if remaining < limit():
                until = row.attempt_time + window()
                break
    addresses = tuple(sorted({row.ip_address for row in rows if row.ip_address}))
    return Lockout(username, failures, rows[-1].attempt_time, until, addresses)


def counted(now: datetime | None = None, username: str | None = None) -> list[Lockout]:
    """Every username with failed logins that count now, locked ones first, then newest."""
    now = now or timezone.now()
    rows = AccessAttempt.objects.filter(attempt_time__gte=now - window(), username__isnull=False)
    if username is not None:
        rows = rows.filter(username=username)
    by_name: dict[str, list[AccessAttempt]] = {}
    for row in rows:
        by_name.setdefault(row.username, []).append(row)
    found = [_lockout(name, name_rows) for name, name_rows in by_name.items()]
    return sorted(found, key=lambda lockout: (not lockout.locked, -lockout.last_failure.timestamp()))


def lockout_of(username: str, now: datetime | None = None) -> Lockout | None:
    found = counted(now, username=username)
    return found[0] if found else None


def utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """What a locked login gets (AXES_LOCKOUT_CALLABLE): 429, until when, and what to do
    meanwhile. Rendered here, not a TemplateResponse: axes' middleware returns it after
    the view, where nothing would render one."""
    username = get_client_username(request, credentials) or ""
    lockout = lockout_of(username) if username else None
    context = {
        **admin.site.each_context(request),
        "title": "Login locked",
        "username": username,
        "until": utc(lockout.until) if lockout and lockout.until else None,
        "limit": limit(),
        "minutes": int(window().total_seconds() // 60),
    }
    return render(request, "ops/login_locked.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)


def log_lockout(sender, request: HttpRequest, username: str, ip_address: str | None, **kwargs) -> None:
    """axes' user_locked_out signal: once when a name gets locked, then for each refused
    attempt. (axes' own log lines mask the username, which the people on call need.)"""
    lockout = lockout_of(username)
    until = utc(lockout.until) if lockout and lockout.until else "the lock lifts"
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is not None:
        logger.warning(
            "login locked out: %r after %d failed logins (limit %d, from %s); every login as %r is "
            "refused until %s unless a supervisor releases it (manage.py login_lockouts release)",
            username,
            failures,
            limit(),
            ip_address or "unknown address",
            username,
            until,
        )
    else:
        logger.warning(
            "login refused: %r is locked out until %s (attempt from %s)",
            username,
            until,
            ip_address or "unknown address",
        )


@dataclass(frozen=True)
class Release:
    username: str
    was: Lockout | None
    cleared: int


def release(username: str, *, by, origin: str, reason: str) -> Release:
    """Clear a username's counted failed logins, so it may log in again at once. Recorded
    as a log line and in the admin's history of that user (or of the name, if no user has
    it), as a change made by `by` (a user) from `origin`."""
    with transaction.atomic():
        was = lockout_of(username)
        cleared = AxesProxyHandler.reset_attempts(username=username)
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        state = f"locked until {utc(was.until)}" if was and was.locked else "not locked"
        failures = was.failures if was else 0
        LogEntry.objects.create(
            user=by,
            content_type=ContentType.objects.get_for_model(User),
            object_id=str(user.pk) if user else None,
            object_repr=str(user or username)[:200],
            action_flag=CHANGE,
            change_message=(
                f"Released the login lockout of {username!r} ({state}, {failures} failed logins "
                f"cleared) from {origin}: {reason}"
            ),
        )
    logger.warning(
        "login lockout of %r released by %s from %s (%s, %d failed logins cleared): %s",
        username,
        by.get_username(),
        origin,
        state,
        failures,
        reason,
    )
    return Release(username, was, cleared)
