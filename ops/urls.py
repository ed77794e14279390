from django.urls import path

from ops import views
from ops.alerts import views as alerts
from ops.api import views as api
from ops.console import views as console
from ops.monitoring.views import metrics

urlpatterns = [
    path("", console.console, name="console"),
    path("console/live", console.live, name="console-live"),
    path("console/halt", console.halt, name="console-halt"),
    path("console/resume", console.resume, name="console-resume"),
    path("console/drill", console.drill, name="console-drill"),
    path("console/requests/<int:request_id>/approve", console.approve, name="console-approve"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/trades", api.create_trade, name="api-trades"),
    path("api/v1/analyses", api.create_analysis, name="api-analyses"),
    path("api/v1/trading/status", api.trading_status, name="api-trading-status"),
    path("api/v1/alerts/alertmanager", alerts.alertmanager_webhook, name="api-alertmanager-webhook"),
    path("api/v1/alerts", alerts.alert_list, name="api-alerts"),
    path("api/v1/openapi.json", api.openapi_document, name="api-openapi"),
]
