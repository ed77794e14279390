"""The drills' evidence on /metrics: when the last one ran, whether it passed, how overdue.

Read at scrape time from DrillRun by a collector that ops.apps registers with /metrics
(ops.monitoring.collector.register): /metrics sits below the drill, which reads it.
The families' names and HELP are in ops.metrics with every other metric.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ops.drill.models import DrillRun, Outcome
from ops.metrics import collected_family

LAST_RUN = (
    "investiq_killswitch_drill_last_run_timestamp_seconds",
    "investiq_killswitch_drill_last_passed",
    "investiq_killswitch_drill_last_success_timestamp_seconds",
)


class DrillCollector(Collector):
    def describe(self) -> list:
        # Empty, as DatabaseCollector's: registering must not query the database.
        return []

    def collect(self) -> Iterator[Metric]:
        """The last-drill series exist only once a drill has ever run: a deployment that
        never drills (drills are off by default) has nothing for KillSwitchDrillOverdue
        to fire on."""
        max_age = collected_family("investiq_killswitch_drill_max_age_seconds")
        max_age.add_metric([], float(settings.DRILL_MAX_AGE_DAYS * 86400))
        yield max_age
        ran, passed, succeeded = (collected_family(name) for name in LAST_RUN)
        last = DrillRun.objects.last_outcome()
        if last is not None:
            ran.add_metric([], last["ended"].timestamp())
            passed.add_metric([], 1.0 if last["outcome"] == Outcome.PASSED else 0.0)
            succeeded.add_metric([], last["last_success"].timestamp())
        # Declared (HELP and TYPE) even without a sample, so check_monitoring sees the contract.
        yield from (ran, passed, succeeded)
