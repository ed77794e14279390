from django.urls import path

from ops import openapi, views
from ops.alerts import views as alerts
from ops.api import views as api
from ops.console import runbooks, silencing
from ops.console import views as console
from ops.monitoring.views import metrics

urlpatterns = [
    path("", console.console, name="console"),
    path("console/live", console.live, name="console-live"),
    path("console/grafana-auth", console.grafana_auth, name="console-grafana-auth"),
    path("console/halt", console.halt, name="console-halt"),
    path("console/resume", console.resume, name="console-resume"),
    path("console/drill", console.drill, name="console-drill"),
    path("console/requests/<int:request_id>/approve", console.approve, name="console-approve"),
    path("console/alerts/<int:alert_id>/silence", silencing.silence_alert, name="console-silence"),
    path("console/silences/<str:silence_id>/expire", silencing.expire_silence, name="console-expire-silence"),
    path("console/runbooks/<str:alertname>", runbooks.runbook, name="console-runbook"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/trades", api.create_trade, name="api-trades"),
    path("api/v1/analyses", api.create_analysis, name="api-analyses"),
    path("api/v1/trading/status", api.trading_status, name="api-trading-status"),
    path("api/v1/alerts/alertmanager", alerts.alertmanager_webhook, name="api-alertmanager-webhook"),
    path("api/v1/alerts", alerts.alert_list, name="api-alerts"),
    path("api/v1/openapi.json", openapi.openapi_document, name="api-openapi"),
]
