"""Every InvestIQ metric, in one place (contract: ARCHITECTURE.md, "Metric contract").

Per-process values (requests, latency, in flight, gate refusals) are prometheus_client
metrics; under gunicorn they live in PROMETHEUS_MULTIPROC_DIR and are summed over
workers at scrape time. Values that live in the database are produced at scrape time
instead, by ops.monitoring.collector and the collectors registered with it
(ops.drill.metrics).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# No *_created series: they double the series count and nothing here reads them.
disable_created_metrics()

# Unmatched paths share one route value, so scanners cannot blow up label cardinality.
UNMATCHED_ROUTE = "<unmatched>"

# Milliseconds. The 1000 edge is the HighLatency threshold: quantiles interpolate
# within a bucket, so the threshold must be an edge to be measured exactly.
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 750, 1000, 1500, 2500, 5000, 10000)

REQUESTS = Counter(
    "investiq_requests_total",
    "HTTP requests by method, URL pattern and status code.",
    ["method", "route", "status"],
)
REQUEST_DURATION = Histogram(
    "investiq_request_duration_milliseconds",
    "HTTP request latency in milliseconds, by method and URL pattern.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS_MS,
)
ERRORS = Counter(
    "investiq_errors_total",
    "5xx responses and unhandled exceptions, by URL pattern and kind.",
    ["route", "kind"],
)
# livesum: the sum over live workers only, so a worker that died mid-request
# does not leave a phantom connection behind.
ACTIVE_CONNECTIONS = Gauge(
    "investiq_active_connections",
    "HTTP requests in flight (summed over live web workers).",
    multiprocess_mode="livesum",
)
ORDERS_DENIED = Counter(
    "investiq_orders_denied_total",
    "Trades refused by the pre-trade gate, by reason.",
    ["reason"],
)
DENIAL_REASONS = ("trading_halted", "trading_reducing", "trading_state_unavailable")

# Known label values start at 0, so the families exist (and rate() works) before the
# first refusal or error, in every worker; otherwise dashboards show "no data".
for _reason in DENIAL_REASONS:
    ORDERS_DENIED.labels(_reason)
for _kind in ("exception", "status_5xx"):
    ERRORS.labels(UNMATCHED_ROUTE, _kind)

# Families produced by the collector (documented here so the contract is in one file).
COLLECTED = {
    "investiq_trades_total": ("counter", "Trades recorded, by side (all creation paths).", ["side"]),
    "investiq_analyses_total": ("counter", "Analyses recorded, by signal.", ["signal"]),
    "investiq_trading_state_changes_total": (
        "counter",
        "Kill-switch transitions, by target state and source.",
        ["to_state", "source"],
    ),
    "investiq_trading_halted": ("gauge", "1 while the global trading state is HALTED, else 0.", []),
    "investiq_trading_state": (
        "gauge",
        "Trading state per scope: 0 active, 1 reducing, 2 halted (global and every non-active scope).",
        ["scope"],
    ),
    "investiq_broker_cancellations_pending": (
        "gauge",
        "Cancel-all-orders requests (on a halt) whose broker outcome is not known yet; "
        "one that stays above 0 means the broker call is stuck or not being retried.",
        [],
    ),
    "investiq_broker_cancellations_failed_recent": (
        "gauge",
        "Cancel-all-orders requests that ended FAILED in the last 24 h: open orders may still be "
        "working at the broker and must be cancelled there by hand.",
        [],
    ),
    "investiq_broker_cancellations_failed_unresolved": (
        "gauge",
        "Cancel-all-orders requests that ended FAILED after the last one that succeeded: stays "
        "until someone acts (a new cancel-all that succeeds), however long ago it failed.",
        [],
    ),
    "investiq_dependency_health": (
        "gauge",
        "1 healthy, 0 unhealthy; absent when not configured or when the last check is stale.",
        ["name"],
    ),
    "investiq_dependency_last_check_timestamp_seconds": (
        "gauge",
        "Unix time the last probe of this dependency finished.",
        ["name"],
    ),
    "investiq_dependency_check_duration_seconds": ("gauge", "How long the last probe took.", ["name"]),
    "investiq_metrics_database_up": ("gauge", "1 if the last scrape could read the database.", []),
    "investiq_killswitch_drill_halted": (
        "gauge",
        "1 while the kill-switch drill has its drill scope HALTED (during a drill), else 0.",
        [],
    ),
    "investiq_killswitch_drill_max_age_seconds": (
        "gauge",
        "DRILL_MAX_AGE_DAYS in seconds: past this without a passed drill, KillSwitchDrillOverdue.",
        [],
    ),
    "investiq_killswitch_drill_last_run_timestamp_seconds": (
        "gauge",
        "Unix time the last kill-switch drill ended, passed or failed (an aborted one is no verdict); "
        "absent until then.",
        [],
    ),
    "investiq_killswitch_drill_last_passed": (
        "gauge",
        "1 if the last kill-switch drill passed, 0 if it failed (aborted ones do not count); "
        "absent until a drill has passed or failed.",
        [],
    ),
    "investiq_killswitch_drill_last_success_timestamp_seconds": (
        "gauge",
        "Unix time the last passed drill ended (the first drill's start if none passed); "
        "absent until a drill has run.",
        [],
    ),
}


def collected_family(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    """An empty family of a COLLECTED metric, with its type, HELP and labels from above."""
    kind, documentation, labels = COLLECTED[name]
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, documentation, labels=labels)


PER_PROCESS = (REQUESTS, REQUEST_DURATION, ERRORS, ACTIVE_CONNECTIONS, ORDERS_DENIED)
_SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every investiq_* sample name /metrics can carry, from the definitions above (no
    scrape, no database): what check_monitoring holds alert rules and panels to."""
    names = set()
    for metric in PER_PROCESS:
        for family in metric.describe():
            names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    for name, (kind, _, _) in COLLECTED.items():
        # Collected counters are declared with their _total sample name already.
        names.add(name if kind == "counter" else name + _SAMPLE_SUFFIXES[kind][0])
    return names
