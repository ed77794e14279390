"""Every model of the ops app, imported by capability.

Django loads an app's models from this module, so each capability's models module is
imported here, at the top; the models themselves live with their capability. The
names stay importable from here (`from ops.models import Trade`), but code inside ops/
imports from the capability's module, so which package builds on which stays visible.
"""

from ops.alerts.models import Alert, Heartbeat, SilenceEvent
from ops.api.models import DEFAULT_SCOPES, ApiClient, Scope, hash_token, normalize_scopes, validate_scopes

# validate_scopes: migration 0009 refers to it as ops.models.validate_scopes.
from ops.drill.models import DrillRun
from ops.health.models import DependencyCheck, DependencyStatus, ProbeCycle
from ops.monitoring.models import MetricCounter
from ops.records.models import MONEY, Analysis, Position, Side, Signal, Trade
from ops.trading.models import BrokerCancellation, FillBooking, ResumeRequest, TradingEvent, TradingState

__all__ = [
    "DEFAULT_SCOPES",
    "MONEY",
    "Alert",
    "Analysis",
    "ApiClient",
    "BrokerCancellation",
    "DependencyCheck",
    "DependencyStatus",
    "DrillRun",
    "FillBooking",
    "Heartbeat",
    "MetricCounter",
    "Position",
    "ProbeCycle",
    "ResumeRequest",
    "Scope",
    "Side",
    "Signal",
    "SilenceEvent",
    "Trade",
    "TradingEvent",
    "TradingState",
    "hash_token",
    "normalize_scopes",
    "validate_scopes",
]
