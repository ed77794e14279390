"""Scrape-time metrics read from the database: the same truth from every worker and host.

Cost per scrape: five small queries whose result sizes depend on the number of
labels, non-active scopes and pending broker cancellations (partial indexes), never
on the number of trades (see MetricCounter), plus those of the registered collectors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ops.health.models import DependencyStatus, Health
from ops.metrics import collected_family
from ops.monitoring.models import MetricCounter
from ops.records.models import Side, Signal
from ops.trading import broker
from ops.trading.models import DRILL_SCOPE, GLOBAL_SCOPE, SEVERITY, State, TradingState

logger = logging.getLogger(__name__)

# Collectors of the packages above this one (the drill's), which read their own tables:
# they register from the wiring (ops.apps), so that /metrics imports nothing above it.
_registered: dict[type, Collector] = {}


def register(collector: Collector) -> None:
    """Add `collector`'s families to every scrape, read under the same database guard as
    ours (one of its kind: a second ready() replaces it rather than doubling it)."""
    _registered[type(collector)] = collector


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
        up = collected_family("investiq_metrics_database_up")
        up.add_metric([], 1.0 if families else 0.0)
        yield from families
        yield up

    def _families(self) -> Iterator[Metric]:
        counters = MetricCounter.objects.all_totals()
        for name, counter, label_names in (
            ("investiq_trades_total", "trades", Side.values),
            ("investiq_analyses_total", "analyses", Signal.values),
        ):
            family = collected_family(name)
            totals = counters.get(counter, {})
            # Every choice is exported, at 0 until the first row, so rate() has a series.
            for label in sorted(set(label_names) | set(totals)):
                family.add_metric([label], float(totals.get(label, 0)))
            yield family

        changes = collected_family("investiq_trading_state_changes_total")
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
        halted = collected_family("investiq_trading_halted")
        halted.add_metric([], 1.0 if global_state == State.HALTED else 0.0)
        yield halted
        per_scope = collected_family("investiq_trading_state")
        per_scope.add_metric([GLOBAL_SCOPE], float(SEVERITY[global_state]))
        for scope, state in sorted(scopes.items()):
            if scope != GLOBAL_SCOPE:
                per_scope.add_metric([scope], float(SEVERITY[state]))
        yield per_scope

        drill_halted = collected_family("investiq_killswitch_drill_halted")
        drill_halted.add_metric([], 1.0 if drill_state == State.HALTED else 0.0)
        yield drill_halted
        # Here, so the drill's families follow its halt gauge as they always have: the
        # last drill's time and outcome (ops.drill.metrics).
        for collector in _registered.values():
            yield from collector.collect()

        pending = collected_family("investiq_broker_cancellations_pending")
        pending.add_metric([], float(broker.pending_count()))
        yield pending
        failed = collected_family("investiq_broker_cancellations_failed_recent")
        failed.add_metric([], float(broker.recently_failed_count()))
        yield failed
        unresolved = collected_family("investiq_broker_cancellations_failed_unresolved")
        unresolved.add_metric([], float(broker.unresolved_failed_count()))
        yield unresolved

        now = timezone.now()
        health = collected_family("investiq_dependency_health")
        last = collected_family("investiq_dependency_last_check_timestamp_seconds")
        duration = collected_family("investiq_dependency_check_duration_seconds")
        for row in DependencyStatus.objects.all():
            shown = row.effective_status(now)
            # Stale or unconfigured: no health sample at all, so a panel shows UNKNOWN
            # instead of the last green; the timestamp still tells how old it is.
            if shown in (Health.UP, Health.DOWN):
                health.add_metric([row.name], 1.0 if shown == Health.UP else 0.0)
            last.add_metric([row.name], row.checked_at.timestamp())
            duration.add_metric([row.name], row.latency_ms / 1000)
        yield from (health, last, duration)
