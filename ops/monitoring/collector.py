"""Scrape-time metrics read from the database: the same truth from every worker and host.

Cost per scrape: five small queries whose result sizes depend on the number of
labels, non-active scopes and pending broker cancellations (partial indexes), never
on the number of trades (see MetricCounter).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ops.drill.models import DrillRun
from ops.health.models import DependencyStatus, Health
from ops.metrics import COLLECTED
from ops.monitoring.models import MetricCounter
from ops.records.models import Side, Signal
from ops.trading import broker
from ops.trading.models import DRILL_SCOPE, GLOBAL_SCOPE, SEVERITY, State, TradingState

logger = logging.getLogger(__name__)


def _family(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    kind, documentation, labels = COLLECTED[name]
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, documentation, labels=labels)


class DatabaseCollector(Collector):
    def describe(self) -> list:
        # Empty on purpose: otherwise registering would run collect(), i.e. query the
        # database while Django is still starting.
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._families())
        except DatabaseError as exc:
            # The scrape still succeeds with the per-process metrics; the gap in these
            # series (and investiq_metrics_database_up 0) is what alerts should see.
            logger.error("metrics collector cannot read the database: %s", exc)
            families = []
        up = _family("investiq_metrics_database_up")
        up.add_metric([], 1.0 if families else 0.0)
        yield from families
        yield up

    def _families(self) -> Iterator[Metric]:
        counters = MetricCounter.objects.all_totals()
        for name, counter, label_names in (
            ("investiq_trades_total", "trades", Side.values),
            ("investiq_analyses_total", "analyses", Signal.values),
        ):
            family = _family(name)
            totals = counters.get(counter, {})
            # Every choice is exported, at 0 until the first row, so rate() has a series.
            for label in sorted(set(label_names) | set(totals)):
                family.add_metric([label], float(totals.get(label, 0)))
            yield family

        changes = _family("investiq_trading_state_changes_total")
        for label, total in counters.get("trading_state_changes", {}).items():
            to_state, _, source = label.partition(MetricCounter.SEPARATOR)
            changes.add_metric([to_state, source], float(total))
        yield changes

        rows = TradingState.objects.filter(Q(scope=GLOBAL_SCOPE) | ~Q(state=State.ACTIVE))
        scopes = dict(rows.values_list("scope", "state"))
        # The drill scope has its own gauge: in investiq_trading_state it would fire
        # TradingScopeHalted, a real alert, at every drill.
        drill_state = scopes.pop(DRILL_SCOPE, State.ACTIVE)
        global_state = scopes.get(GLOBAL_SCOPE, State.ACTIVE)
        halted = _family("investiq_trading_halted")
        halted.add_metric([], 1.0 if global_state == State.HALTED else 0.0)
        yield halted
        per_scope = _family("investiq_trading_state")
        per_scope.add_metric([GLOBAL_SCOPE], float(SEVERITY[global_state]))
        for scope, state in sorted(scopes.items()):
            if scope != GLOBAL_SCOPE:
                per_scope.add_metric([scope], float(SEVERITY[state]))
        yield per_scope

        yield from _drill_families(drill_state)

        pending = _family("investiq_broker_cancellations_pending")
        pending.add_metric([], float(broker.pending_count()))
        yield pending
        failed = _family("investiq_broker_cancellations_failed_recent")
        failed.add_metric([], float(broker.recently_failed_count()))
        yield failed
        unresolved = _family("investiq_broker_cancellations_failed_unresolved")
        unresolved.add_metric([], float(broker.unresolved_failed_count()))
        yield unresolved

        now = timezone.now()
        health = _family("investiq_dependency_health")
        last = _family("investiq_dependency_last_check_timestamp_seconds")
        duration = _family("investiq_dependency_check_duration_seconds")
        for row in DependencyStatus.objects.all():
            shown = row.effective_status(now)
            # Stale or unconfigured: no health sample at all, so a panel shows UNKNOWN
            # instead of the last green; the timestamp still tells how old it is.
            if shown in (Health.UP, Health.DOWN):
                health.add_metric([row.name], 1.0 if shown == Health.UP else 0.0)
            last.add_metric([row.name], row.checked_at.timestamp())
            duration.add_metric([row.name], row.latency_ms / 1000)
        yield from (health, last, duration)


def _drill_families(drill_state: str) -> Iterator[Metric]:
    """The drill scope's halt, and the last drill's time and outcome.

    The last-drill series exist only once a drill has ever run: a deployment that never
    drills (drills are off by default) has nothing for KillSwitchDrillOverdue to fire on.
    """
    halted = _family("investiq_killswitch_drill_halted")
    halted.add_metric([], 1.0 if drill_state == State.HALTED else 0.0)
    yield halted
    max_age = _family("investiq_killswitch_drill_max_age_seconds")
    max_age.add_metric([], float(settings.DRILL_MAX_AGE_DAYS * 86400))
    yield max_age
    last = DrillRun.objects.last_finished()
    families = {
        name: _family(name)
        for name in (
            "investiq_killswitch_drill_last_run_timestamp_seconds",
            "investiq_killswitch_drill_last_passed",
            "investiq_killswitch_drill_last_success_timestamp_seconds",
        )
    }
    if last is not None:
        passed = DrillRun.objects.last_passed()
        # Never passed: counted from the first drill, so a drill that has always failed
        # still becomes overdue (besides KillSwitchDrillFailed).
        since = passed.ended_at if passed else DrillRun.objects.order_by("started_at").first().started_at
        families["investiq_killswitch_drill_last_run_timestamp_seconds"].add_metric(
            [], (last.ended_at or last.started_at).timestamp()
        )
        families["investiq_killswitch_drill_last_passed"].add_metric(
            [], 1.0 if last.outcome == "passed" else 0.0
        )
        families["investiq_killswitch_drill_last_success_timestamp_seconds"].add_metric([], since.timestamp())
    # Declared (HELP and TYPE) even without a sample, so check_monitoring sees the contract.
    yield from families.values()
