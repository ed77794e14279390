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

from django.db import IntegrityError, transaction
from django.utils import timezone

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


def store(alerts: list[IncomingAlert]) -> list[Alert]:
    """Store every alert of one notification, and act on the mapped ones, in one transaction."""
    now = timezone.now()
    stored = []
    with transaction.atomic():
        for incoming in alerts:
            row, created = _locked_row(incoming, now)
            _merge(row, incoming, now, created)
            act_on(row)
            stored.append(row)
    return stored


def _locked_row(incoming: IncomingAlert, now: datetime) -> tuple[Alert, bool]:
    """The occurrence's row, locked; created (as received) when new.

    Two deliveries of a new alert can race to create it: the loser's insert fails on the
    unique key inside its savepoint, and it then locks the winner's row instead.
    """
    key = {"fingerprint": incoming.fingerprint, "starts_at": incoming.starts_at}
    row = Alert.objects.select_for_update().filter(**key).first()
    if row is not None:
        return row, False
    try:
        with transaction.atomic():
            return Alert.objects.create(**key, status=incoming.status, first_received_at=now), True
    except IntegrityError:
        return Alert.objects.select_for_update().get(**key), False


def _merge(row: Alert, incoming: IncomingAlert, now: datetime, created: bool) -> None:
    row.last_received_at = now
    if row.status == AlertStatus.RESOLVED and not created:
        # Resolved is final for this occurrence: a late (out-of-order) redelivery of
        # the firing notification must not reopen it.
        row.save(update_fields=["last_received_at"])
        return
    row.status = incoming.status
    row.ends_at = incoming.ends_at if incoming.status == AlertStatus.RESOLVED else None
    row.labels = incoming.labels
    row.annotations = incoming.annotations
    row.alertname = incoming.labels.get("alertname", "")[:200]
    row.severity = incoming.labels.get("severity", "")[:50]
    row.summary = incoming.annotations.get("summary", "")
    row.description = incoming.annotations.get("description", "")
    row.runbook_url = incoming.annotations.get("runbook_url", "")[:1000]
    row.generator_url = incoming.generator_url
    row.save()
