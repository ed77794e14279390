"""The Alertmanager webhook and the alert store's read endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from ops.alerts.heartbeat import chain_state
from ops.alerts.intake import InvalidNotification, parse_notification, store
from ops.alerts.models import Alert
from ops.alerts.schemas import AlertList, AlertListQuery, StoredAlerts
from ops.api.decorators import api_view
from ops.api.errors import ApiError
from ops.api.models import ApiClient, Scope
from ops.api.parsing import read_json_object


@api_view("POST", scope=Scope.ALERTS, engine=False)
def alertmanager_webhook(request: HttpRequest, client: ApiClient) -> HttpResponse:
    try:
        alerts = parse_notification(read_json_object(request))
    except InvalidNotification as exc:
        raise ApiError(400, "invalid_notification", exc.detail, fields=exc.fields) from None
    return StoredAlerts(stored=len(store(alerts))).response()


@api_view("GET", scope=Scope.STATUS)
def alert_list(request: HttpRequest, client: ApiClient) -> HttpResponse:
    query = AlertListQuery.validate_query(request.GET)
    alerts = Alert.objects.with_status(query["status"]).newest_first()[: query["limit"]]
    return AlertList.of({"alerts": list(alerts), "monitoring": chain_state()}).response()
