from django.urls import path
from django.views.generic import RedirectView

from ops import views
from ops.alerts import views as alerts
from ops.api import views as api
from ops.monitoring.views import metrics

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="console"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/trades", api.create_trade, name="api-trades"),
    path("api/v1/analyses", api.create_analysis, name="api-analyses"),
    path("api/v1/trading/status", api.trading_status, name="api-trading-status"),
    path("api/v1/alerts/alertmanager", alerts.alertmanager_webhook, name="api-alertmanager-webhook"),
    path("api/v1/alerts", alerts.alert_list, name="api-alerts"),
]
