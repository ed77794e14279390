"""Silences from the console: a small client of Alertmanager's API v2, and their audit.

A silence is made in Alertmanager (POST /api/v2/silences) with the firing alert's own
labels as equality matchers, `createdBy` the person logged in and `comment` their
reason; expired early with DELETE /api/v2/silence/{id}. Alertmanager is the one place
that holds silences (its UI and amtool see the same ones); what this app keeps is who
did what and why, as SilenceEvent rows, written only after Alertmanager said yes.
Alertmanager not configured or not answering: nothing is made, nothing is recorded,
and the console says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ops.alerts.models import CONSOLE_ONLY_LABEL, Alert, AlertStatus, SilenceEvent
from ops.http import OutboundError, Timeout, request_json, request_text

SILENCE = "silence_alerts"  # the permission (ops.trading.roles: operators, supervisors)
# Short: the console's page and its live refresh (every 5 s) wait for the list.
LIST_TIMEOUT = Timeout(connect=1.0, read=1.0)
CHANGE_TIMEOUT = Timeout(connect=2.0, read=5.0)
# The choices offered; anything else is refused (400), so nobody silences for a year.
DURATIONS = {
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
    "8h": timedelta(hours=8),
    "24h": timedelta(hours=24),
}
DURATION_LABELS = {
    "30m": "30 minutes",
    "1h": "1 hour",
    "2h": "2 hours",
    "4h": "4 hours",
    "8h": "8 hours",
    "24h": "24 hours",
}
MAX_REASON = 1000
# Alertmanager's silence ids are UUIDs; anything else never reaches its URL.
SILENCE_ID = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


class SilenceUnavailable(Exception):
    """Alertmanager is not configured, or did not answer as expected: nothing changed."""


class InvalidSilence(ValueError):
    """The request itself is wrong (400): nothing was sent, nothing changed."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: list[dict]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    @property
    def alertname(self) -> str:
        for matcher in self.matchers:
            if matcher.get("name") == "alertname" and not matcher.get("isRegex"):
                return str(matcher.get("value", ""))
        return ""

    @property
    def matchers_text(self) -> str:
        return ", ".join(_matcher_text(m) for m in self.matchers)


@dataclass(frozen=True)
class SilenceList:
    """What the console shows: the active silences, or why there are none to show."""

    silences: list[Silence]
    unavailable: str = ""
    read_at: datetime | None = None


def _matcher_text(matcher: dict) -> str:
    operator = ("=~" if matcher.get("isRegex") else "=") if matcher.get("isEqual", True) else "!="
    if matcher.get("isRegex") and not matcher.get("isEqual", True):
        operator = "!~"
    return f'{matcher.get("name")}{operator}"{matcher.get("value")}"'


def configured() -> bool:
    return bool((settings.ALERTMANAGER_URL or "").strip())


def base_url() -> str:
    url = (settings.ALERTMANAGER_URL or "").strip().rstrip("/")
    if not url:
        raise SilenceUnavailable("Alertmanager is not configured (set ALERTMANAGER_URL)")
    return url


def _unavailable(exc: OutboundError, what: str) -> SilenceUnavailable:
    if exc.kind in ("timeout", "connection"):
        return SilenceUnavailable(f"Alertmanager at {base_url()} cannot be reached: {exc.detail}")
    return SilenceUnavailable(f"Alertmanager did not {what}: {exc.detail}")


def active() -> SilenceList:
    """The active silences, soonest to end first; never raises."""
    now = timezone.now()
    try:
        body = request_json("GET", f"{base_url()}/api/v2/silences", timeout=LIST_TIMEOUT).body
        found = [_parse(item) for item in body if item.get("status", {}).get("state") == "active"]
    except SilenceUnavailable as exc:
        return SilenceList([], unavailable=str(exc), read_at=now)
    except OutboundError as exc:
        return SilenceList([], unavailable=str(_unavailable(exc, "list its silences")), read_at=now)
    except (ValueError, TypeError, KeyError, AttributeError):
        return SilenceList([], unavailable="Alertmanager's list of silences could not be read", read_at=now)
    return SilenceList(sorted(found, key=lambda s: s.ends_at), read_at=now)


def _parse(item: dict) -> Silence:
    return Silence(
        id=str(item["id"]),
        matchers=list(item["matchers"]),
        starts_at=datetime.fromisoformat(item["startsAt"]),
        ends_at=datetime.fromisoformat(item["endsAt"]),
        created_by=str(item.get("createdBy", "")),
        comment=str(item.get("comment", "")),
    )


def silenceable(alert: Alert) -> bool:
    return alert.status == AlertStatus.FIRING and alert.labels.get(CONSOLE_ONLY_LABEL) != "true"


def clean_reason(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidSilence("A reason is required: say why this alert may be quiet.")
    if "\x00" in text:
        raise InvalidSilence("The reason contains a NUL character.")
    text = text.strip()
    if len(text) > MAX_REASON:
        raise InvalidSilence(f"The reason is longer than {MAX_REASON} characters.")
    return text


def clean_duration(text: object) -> tuple[str, timedelta]:
    if text not in DURATIONS:
        choices = ", ".join(DURATIONS)
        raise InvalidSilence(f"Choose how long to silence for: one of {choices}.")
    return text, DURATIONS[text]


def clean_silence_id(text: object) -> str:
    if not isinstance(text, str) or not SILENCE_ID.match(text):
        raise InvalidSilence("That is not an Alertmanager silence id.")
    return text.lower()


def silence(alert: Alert, *, duration: object, reason: object, user) -> SilenceEvent:
    """Silence `alert` in Alertmanager; record it once Alertmanager has accepted it."""
    if not silenceable(alert):
        raise InvalidSilence(
            f"{alert.alertname or 'This alert'} cannot be silenced here: "
            + (
                "it is no longer firing."
                if alert.status != AlertStatus.FIRING
                else "it is a console-only alert."
            )
        )
    label, length = clean_duration(duration)
    reason = clean_reason(reason)
    matchers = [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in sorted(alert.labels.items())
    ]
    if not matchers:
        raise InvalidSilence("This alert has no labels to match: it cannot be silenced on its own.")
    starts_at = timezone.now()
    ends_at = starts_at + length
    body = {
        "matchers": matchers,
        "startsAt": starts_at.isoformat(),
        "endsAt": ends_at.isoformat(),
        "createdBy": user.get_username(),
        "comment": reason,
    }
    try:
        answer = request_json("POST", f"{base_url()}/api/v2/silences", timeout=CHANGE_TIMEOUT, json=body)
        silence_id = clean_silence_id(answer.body["silenceID"])
    except OutboundError as exc:
        raise _unavailable(exc, "accept the silence") from None
    except (KeyError, TypeError, InvalidSilence):
        raise SilenceUnavailable("Alertmanager's answer named no silence id") from None
    return SilenceEvent.objects.create(
        action=SilenceEvent.Action.CREATED,
        silence_id=silence_id,
        actor=user.get_username(),
        alertname=alert.alertname,
        matchers=matchers,
        duration=label,
        ends_at=ends_at,
        reason=reason,
    )


def expire(silence_id: object, *, user) -> SilenceEvent:
    """Expire a silence now in Alertmanager; record it once Alertmanager has done it."""
    silence_id = clean_silence_id(silence_id)
    url = f"{base_url()}/api/v2/silence/{silence_id}"
    try:
        current = request_json("GET", url, timeout=CHANGE_TIMEOUT).body
    except OutboundError as exc:
        if exc.status == 404:
            raise InvalidSilence(f"Alertmanager has no silence {silence_id}.") from None
        raise _unavailable(exc, f"show silence {silence_id}") from None
    try:
        found = _parse(current)
        state = current["status"]["state"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SilenceUnavailable(
            f"Alertmanager's answer for silence {silence_id} could not be read"
        ) from None
    if state == "expired":
        raise InvalidSilence(f"Silence {silence_id} has already ended.")
    try:
        request_text("DELETE", url, timeout=CHANGE_TIMEOUT)
    except OutboundError as exc:
        raise _unavailable(exc, f"expire silence {silence_id}") from None
    return SilenceEvent.objects.create(
        action=SilenceEvent.Action.EXPIRED,
        silence_id=silence_id,
        actor=user.get_username(),
        alertname=found.alertname,
        matchers=found.matchers,
        duration="",
        ends_at=timezone.now(),
        # A silence made elsewhere may have had no comment; the audit row always says something.
        reason=found.comment or "(the silence had no comment)",
    )


EVENTS_SHOWN = 10


@dataclass(frozen=True)
class ConsoleSilences:
    """The console's silences part: Alertmanager's active silences and the latest audit rows."""

    listing: SilenceList
    events: list[SilenceEvent]

    @property
    def configured(self) -> bool:
        return configured()


def for_console() -> ConsoleSilences:
    return ConsoleSilences(active(), list(SilenceEvent.objects.order_by("-created_at", "-id")[:EVENTS_SHOWN]))
