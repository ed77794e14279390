"""Alertmanager webhook notifications (payload version 4) into the alert store.

A notification is all or nothing: every alert in it is validated before any is stored,
and all are stored in one transaction, together with any kill-switch action they
trigger. Alertmanager retries a delivery that fails, so an error here loses nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ops.alerts import heartbeat
from ops.alerts.actions import act_on
from ops.alerts.models import Alert, AlertStatus

FINGERPRINT = re.compile(r"\A[0-9a-fA-F]{1,64}\Z")
# Go's zero time: what Alertmanager sends as endsAt while an alert still fires.
ZERO_TIME_YEAR = 1


class InvalidNotification(ValueError):
    def __init__(self, detail: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields or {}


@dataclass(frozen=True)
class IncomingAlert:
    fingerprint: str
    status: str
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str


def parse_notification(payload: dict[str, Any]) -> list[IncomingAlert]:
    """The notification's alerts, or InvalidNotification naming every bad field."""
    if payload.get("version") != "4":
        raise InvalidNotification(
            f'Only Alertmanager webhook payload version "4" is understood, not {payload.get("version")!r}.',
            {"version": ['Must be "4".']},
        )
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidNotification('"alerts" must be a list.', {"alerts": ["Must be a list."]})
    errors: dict[str, list[str]] = {}
    parsed = []
    for index, item in enumerate(alerts):
        prefix = f"alerts[{index}]"
        if not isinstance(item, dict):
            errors[prefix] = ["Must be an object."]
            continue
        found = _parse_alert(item, prefix, errors)
        if found is not None:
            parsed.append(found)
    if errors:
        raise InvalidNotification(f"Invalid alerts: {', '.join(sorted(errors))}; nothing was stored.", errors)
    return parsed


def _parse_alert(item: dict[str, Any], prefix: str, errors: dict[str, list[str]]) -> IncomingAlert | None:
    before = len(errors)
    fingerprint = item.get("fingerprint")
    if not isinstance(fingerprint, str) or not FINGERPRINT.match(fingerprint):
        errors[f"{prefix}.fingerprint"] = ["Must be 1–64 hexadecimal characters."]
    status = item.get("status")
    if status not in AlertStatus.values:
        errors[f"{prefix}.status"] = ['Must be "firing" or "resolved".']
    starts_at = _timestamp(item.get("startsAt"), f"{prefix}.startsAt", errors, required=True)
    ends_at = _timestamp(item.get("endsAt"), f"{prefix}.endsAt", errors, required=False)
    labels = _string_map(item.get("labels", {}), f"{prefix}.labels", errors)
    annotations = _string_map(item.get("annotations", {}), f"{prefix}.annotations", errors)
    generator_url = item.get("generatorURL", "")
    if not isinstance(generator_url, str):
        errors[f"{prefix}.generatorURL"] = ["Must be a string."]
    if len(errors) > before:
        return None
    return IncomingAlert(
        fingerprint.lower(), status, starts_at, ends_at, labels, annotations, generator_url[:2000]
    )


def _timestamp(value: Any, field: str, errors: dict[str, list[str]], *, required: bool) -> datetime | None:
    if value in (None, "") and not required:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        errors[field] = ["Must be an RFC 3339 timestamp with an offset, e.g. 2026-11-27T14:30:00Z."]
        return None
    if parsed.year == ZERO_TIME_YEAR:
        if required:
            errors[field] = ["Must be a real time, not the zero time."]
        return None
    return parsed


def _string_map(value: Any, field: str, errors: dict[str, list[str]]) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        errors[field] = ["Must be an object of strings."]
        return {}
    return value


# What a notification can change on an occurrence's row.
MERGED_FIELDS = (
    "status",
    "ends_at",
    "labels",
    "annotations",
    "alertname",
    "severity",
    "summary",
    "description",
    "runbook_url",
    "generator_url",
)


def store(alerts: list[IncomingAlert]) -> list[Alert]:
    """Store every alert of one notification, and act on the mapped ones, in one transaction.

    A notification of any size costs a fixed number of statements: one locking SELECT of
    the rows it names, one INSERT and one more SELECT for new ones, one UPDATE for changed
    ones. Alertmanager re-sends every firing alert at each repeat_interval, so a
    redelivery that changes nothing writes nothing (bench/alert_storm.py). The Watchdog
    is the chain's heartbeat (ops.alerts.heartbeat), recorded, never stored as an alert.
    """
    now = timezone.now()
    beats = [a for a in alerts if a.labels.get("alertname") == heartbeat.WATCHDOG_ALERTNAME]
    alerts = [a for a in alerts if a.labels.get("alertname") != heartbeat.WATCHDOG_ALERTNAME]
    with transaction.atomic():
        if any(beat.status == AlertStatus.FIRING for beat in beats):
            heartbeat.record(now)
        if not alerts:
            return []
        # The same occurrence twice in one notification: the last one wins.
        incoming = {(alert.fingerprint, alert.starts_at): alert for alert in alerts}
        rows = _locked_rows(incoming, now)
        changed = [rows[key] for key, alert in incoming.items() if _merge(rows[key], alert, now)]
        if changed:
            Alert.objects.bulk_update(changed, [*MERGED_FIELDS, "last_received_at"])
        for key in incoming:
            act_on(rows[key])
    return [rows[(alert.fingerprint, alert.starts_at)] for alert in alerts]


def _locked_rows(incoming: dict[tuple[str, datetime], IncomingAlert], now: datetime) -> dict:
    """Every occurrence's row, locked; the new ones created first, as received.

    Two deliveries of a new alert can race to create it: the loser's insert skips the
    conflicting row (ignore_conflicts) and then locks the winner's row instead.
    """

    def locked(keys) -> dict:
        # Two IN lists on the unique (fingerprint, starts_at) index: a 50-way OR of pairs
        # costs the planner far more. The few extra pairs it matches (another occurrence
        # of a fingerprint) are locked too and left alone.
        wanted = set(keys)
        found = Alert.objects.select_for_update().filter(
            fingerprint__in={fingerprint for fingerprint, _ in wanted},
            starts_at__in={starts_at for _, starts_at in wanted},
        )
        return {key: row for row in found if (key := (row.fingerprint, row.starts_at)) in wanted}

    rows = locked(incoming)
    new = [key for key in incoming if key not in rows]
    if new:
        Alert.objects.bulk_create(
            [_new_row(incoming[key], now) for key in new], ignore_conflicts=True, batch_size=500
        )
        rows |= locked(new)
    return rows


def _new_row(incoming: IncomingAlert, now: datetime) -> Alert:
    row = Alert(
        fingerprint=incoming.fingerprint,
        starts_at=incoming.starts_at,
        first_received_at=now,
        last_received_at=now,
    )
    for field, value in _content(incoming).items():
        setattr(row, field, value)
    return row


def _content(incoming: IncomingAlert) -> dict[str, Any]:
    return {
        "status": incoming.status,
        "ends_at": incoming.ends_at if incoming.status == AlertStatus.RESOLVED else None,
        "labels": incoming.labels,
        "annotations": incoming.annotations,
        "alertname": incoming.labels.get("alertname", "")[:200],
        "severity": incoming.labels.get("severity", "")[:50],
        "summary": incoming.annotations.get("summary", ""),
        "description": incoming.annotations.get("description", ""),
        "runbook_url": incoming.annotations.get("runbook_url", "")[:1000],
        "generator_url": incoming.generator_url,
    }


def _merge(row: Alert, incoming: IncomingAlert, now: datetime) -> bool:
    """Apply the notification to the row in memory; True when anything changed.

    last_received_at moves only with a change: the chain's liveness is the heartbeat's
    job, so an identical redelivery needs no write at all.
    """
    if row.status == AlertStatus.RESOLVED:
        # Resolved is final for this occurrence: a late (out-of-order) redelivery of
        # the firing notification must not reopen it.
        return False
    content = _content(incoming)
    if all(getattr(row, field) == value for field, value in content.items()):
        return False
    for field, value in content.items():
        setattr(row, field, value)
    row.last_received_at = now
    return True
