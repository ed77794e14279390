"""Alertmanager webhook notifications (payload version 4) into the alert store.

A notification is all or nothing: every alert in it is validated before any is stored,
and all are stored in one transaction, together with any kill-switch action they
trigger. Alertmanager retries a delivery that fails, so an error here loses nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from ops.alerts import heartbeat
from ops.alerts.actions import act_on
from ops.alerts.models import Alert, AlertStatus


def ecma(pattern: str) -> str:
    # Python's \A and \Z (whole string) are ^ and $ in JSON Schema's regexes.
    return pattern.replace(r"\A", "^").replace(r"\Z", "$")


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


def _timestamp(value: Any, *, required: bool) -> datetime | None:
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
        raise PydanticCustomError(
            "timestamp", "Must be an RFC 3339 timestamp with an offset, e.g. 2026-11-27T14:30:00Z."
        ) from None
    if parsed.year == ZERO_TIME_YEAR:
        if required:
            raise PydanticCustomError("zero_time", "Must be a real time, not the zero time.")
        return None
    return parsed


# JSON Schema cannot say "not Go's zero time once in UTC" or "no overflow when converted":
# the document names the years 1000-8999, well inside what the server takes.
TIMESTAMP = {"type": "string", "format": "date-time", "pattern": "^[1-8][0-9]{3}-"}
ZERO_TIME = "0001-01-01T00:00:00Z"


# Text Postgres can store (no NUL, no unpaired surrogate: its text and jsonb refuse both),
# refused on every backend alike. Alertmanager never sends such text.
STORABLE_TEXT = r"^[^\x00\ud800-\udfff]*$"
_STORABLE_TEXT = re.compile(STORABLE_TEXT.replace("$", r"\Z"))
TEXT = {"type": "string", "pattern": STORABLE_TEXT}


def _storable(value: Any) -> bool:
    return isinstance(value, str) and bool(_STORABLE_TEXT.match(value))


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        _storable(key) and _storable(item) for key, item in value.items()
    ):
        raise PydanticCustomError("string_map", "Must be an object of strings (without NUL characters).")
    return value


StringMap = Annotated[
    dict[str, str],
    PlainValidator(_string_map),
    WithJsonSchema({"type": "object", "propertyNames": TEXT, "additionalProperties": TEXT}),
]


def _fingerprint(value: Any) -> str:
    if not isinstance(value, str) or not FINGERPRINT.match(value):
        raise PydanticCustomError("fingerprint", "Must be 1–64 hexadecimal characters.")
    return value.lower()


def _status(value: Any) -> str:
    if value not in AlertStatus.values:
        raise PydanticCustomError("status", 'Must be "firing" or "resolved".')
    return value


def _generator_url(value: Any) -> str:
    if not _storable(value):
        raise PydanticCustomError("string", "Must be a string (without NUL characters).")
    return value[:2000]


class AlertmanagerAlert(BaseModel):
    """One alert of a notification; the document's schema is generated from it."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    fingerprint: Annotated[
        str,
        PlainValidator(_fingerprint),
        WithJsonSchema({"type": "string", "pattern": ecma(FINGERPRINT.pattern)}),
    ]
    status: Annotated[str, PlainValidator(_status), WithJsonSchema({"enum": AlertStatus.values})]
    startsAt: Annotated[
        datetime,
        PlainValidator(lambda value: _timestamp(value, required=True)),
        WithJsonSchema({**TIMESTAMP, "description": "Not Go's zero time (0001-01-01T00:00:00Z)."}),
    ]
    endsAt: Annotated[
        datetime | None,
        PlainValidator(lambda value: _timestamp(value, required=False)),
        WithJsonSchema(
            {
                "description": "Go's zero time, empty or null while the alert fires.",
                "oneOf": [TIMESTAMP, {"enum": [ZERO_TIME, ""]}, {"type": "null"}],
            }
        ),
    ] = None
    labels: StringMap = {}
    annotations: StringMap = {}
    generatorURL: Annotated[str, PlainValidator(_generator_url), WithJsonSchema({"type": "string"})] = ""

    def incoming(self) -> IncomingAlert:
        return IncomingAlert(
            self.fingerprint,
            self.status,
            self.startsAt,
            self.endsAt,
            self.labels,
            self.annotations,
            self.generatorURL,
        )


class AlertmanagerNotification(BaseModel):
    """Alertmanager's webhook payload, version 4. Fields not listed here (status,
    receiver, groupLabels, ...) are accepted and ignored. All or nothing: one bad alert
    and none is stored."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    version: Literal["4"]
    alerts: list[AlertmanagerAlert]


def parse_notification(payload: dict[str, Any]) -> list[IncomingAlert]:
    """The notification's alerts, or InvalidNotification naming every bad field."""
    if payload.get("version") != "4":
        raise InvalidNotification(
            f'Only Alertmanager webhook payload version "4" is understood, not {payload.get("version")!r}.',
            {"version": ['Must be "4".']},
        )
    if not isinstance(payload.get("alerts"), list):
        raise InvalidNotification('"alerts" must be a list.', {"alerts": ["Must be a list."]})
    try:
        notification = AlertmanagerNotification.model_validate(payload)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            _, index, *rest = error["loc"]
            name = f"alerts[{index}]" + "".join(f".{part}" for part in rest)
            if error["type"] == "model_type":
                message = "Must be an object."
            elif error["type"] == "missing" and rest and rest[0] in ("fingerprint", "status"):
                # As before: a missing fingerprint or status is simply not a valid one.
                message = {
                    "fingerprint": "Must be 1–64 hexadecimal characters.",
                    "status": 'Must be "firing" or "resolved".',
                }[rest[0]]
            elif error["type"] == "missing":
                message = "Must be an RFC 3339 timestamp with an offset, e.g. 2026-11-27T14:30:00Z."
            else:
                message = error["msg"]
            errors.setdefault(name, []).append(message)
        raise InvalidNotification(
            f"Invalid alerts: {', '.join(sorted(errors))}; nothing was stored.", errors
        ) from None
    return [alert.incoming() for alert in notification.alerts]


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
