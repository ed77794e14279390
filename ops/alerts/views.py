"""The Alertmanager webhook and the alert store's read endpoint."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from ops.alerts.heartbeat import chain_state
from ops.alerts.intake import InvalidNotification, parse_notification, store
from ops.alerts.models import Alert
from ops.api.decorators import api_view
from ops.api.errors import ApiError
from ops.api.models import ApiClient, Scope
from ops.api.parsing import read_json_object

MAX_LIMIT = 500
DEFAULT_LIMIT = 100


def alert_json(alert: Alert) -> dict:
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "status": alert.status,
        "severity": alert.severity,
        "summary": alert.summary,
        "description": alert.description,
        "runbook_url": alert.runbook_url,
        "labels": alert.labels,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "last_received_at": alert.last_received_at.isoformat(),
    }


@api_view("POST", scope=Scope.ALERTS, engine=False)
def alertmanager_webhook(request: HttpRequest, client: ApiClient) -> JsonResponse:
    try:
        alerts = parse_notification(read_json_object(request))
    except InvalidNotification as exc:
        raise ApiError(400, "invalid_notification", exc.detail, fields=exc.fields) from None
    stored = store(alerts)
    return JsonResponse({"stored": len(stored)})


@api_view("GET", scope=Scope.STATUS)
def alert_list(request: HttpRequest, client: ApiClient) -> JsonResponse:
    status = request.GET.get("status", "firing")
    errors = {}
    if status not in ("firing", "resolved", "all"):
        errors["status"] = ['Must be "firing", "resolved" or "all".']
    limit_text = request.GET.get("limit", str(DEFAULT_LIMIT))
    # Length first: int() of thousands of digits raises instead of answering.
    if not (
        len(limit_text) <= 3
        and limit_text.isascii()
        and limit_text.isdigit()
        and 1 <= int(limit_text) <= MAX_LIMIT
    ):
        errors["limit"] = [f"Must be a whole number from 1 to {MAX_LIMIT}."]
    unknown = set(request.GET) - {"status", "limit"}
    for name in unknown:
        errors[name] = ["Unknown parameter."]
    if errors:
        raise ApiError(400, "validation_failed", f"Invalid parameters: {', '.join(sorted(errors))}.", errors)
    alerts = Alert.objects.with_status(status).newest_first()[: int(limit_text)]
    return JsonResponse(
        {"alerts": [alert_json(alert) for alert in alerts], "monitoring": chain_state().as_json()}
    )
