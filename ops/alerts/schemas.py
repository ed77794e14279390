"""The alert endpoints' query and answers, declared once: the models validate the alert
list's query and build the bodies, and the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from ops.alerts.heartbeat import CONNECTED, NOT_CONNECTED, SILENT
from ops.alerts.models import AlertStatus
from ops.api.bodies import DateTimeText, ResponseModel
from ops.api.schemas import QueryModel

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
LIMIT_MESSAGE = f"Must be a whole number from 1 to {MAX_LIMIT}."


def _whole_number(value: Any) -> int:
    # Length first: int() of thousands of digits raises instead of answering. ASCII
    # digits only: int() also reads " 5", "+5", "1_0" and non-ASCII digits.
    if not (
        isinstance(value, str)
        and len(value) <= len(str(MAX_LIMIT))
        and value.isascii()
        and value.isdigit()
        and 1 <= int(value) <= MAX_LIMIT
    ):
        raise PydanticCustomError("limit", LIMIT_MESSAGE)
    return int(value)


class AlertListQuery(QueryModel):
    invalid = "Invalid parameters"
    messages: ClassVar[dict[str, str]] = {
        "literal_error": 'Must be "firing", "resolved" or "all".',
        "extra_forbidden": "Unknown parameter.",
    }

    status: Literal[(*AlertStatus.values, "all")] = "firing"  # type: ignore[valid-type]
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(_whole_number)] = DEFAULT_LIMIT


class Alert(ResponseModel):
    fingerprint: str = Field(json_schema_extra={"pattern": "^[0-9a-f]{1,64}$"})
    alertname: str
    status: Literal[tuple(AlertStatus.values)]  # type: ignore[valid-type]
    severity: str
    summary: str
    description: str
    runbook_url: str
    # What the webhook stores is str -> str; declared loosely so that a row written some
    # other way is still answered, not a 500 (see MonitoringChain).
    labels: dict[str, Any] = Field(json_schema_extra={"additionalProperties": {"type": "string"}})
    starts_at: DateTimeText
    ends_at: DateTimeText | None
    last_received_at: DateTimeText


class MonitoringChain(ResponseModel):
    """Whether the Watchdog heartbeat still arrives (ops.alerts.heartbeat.ChainState)."""

    state: Literal[CONNECTED, SILENT, NOT_CONNECTED]
    last_heartbeat_at: DateTimeText | None
    # Bounds for the document only (json_schema_extra, not ge=): model_validate checks an
    # answer's constraints, and a setting out of range would turn every call into a 500.
    heartbeat_age_seconds: int | None = Field(
        validation_alias="age_seconds", json_schema_extra={"minimum": 0}
    )
    heartbeat_max_age_seconds: int = Field(
        validation_alias="max_age_seconds", json_schema_extra={"minimum": 1}
    )


class AlertList(ResponseModel):
    alerts: list[Alert]
    monitoring: MonitoringChain


class StoredAlerts(ResponseModel):
    stored: int = Field(
        description="How many alerts the notification held.", json_schema_extra={"minimum": 0}
    )
