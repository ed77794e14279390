"""Recording probe results, the automatic trips, and the periodic cycle."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ops.health.models import DependencyCheck, DependencyStatus, Health, ProbeCycle
from ops.health.probes import PROBES
from ops.health.runner import ProbeResult, run_probes
from ops.trading import service as kill_switch
from ops.trading.errors import TradingStateError
from ops.trading.models import State

logger = logging.getLogger(__name__)

# The automatic trips: dependency -> (state, rule). The ML service never trips trading.
TRIPS = {
    "alpaca": (State.HALTED, "broker_unreachable"),
    "polygon": (State.REDUCING, "market_data_unavailable"),
}
PROBES_ACTOR = kill_switch.Actor.system("probes", kill_switch.HALT)


def check_now() -> list[ProbeResult]:
    """Run every probe once and record the results (what the periodic task does)."""
    results = run_probes(PROBES)
    record(results)
    return results


def periodic_cycle() -> list[ProbeResult] | None:
    """The beat task's body; skips when another cycle started less than an interval ago.

    Exactly one beat should run, but a second one (a stray `-B`, a redeploy overlap)
    must be harmless: a compare-and-set on one row lets one cycle per interval through.
    """
    now = timezone.now()
    window = timedelta(seconds=settings.PROBE_INTERVAL_SECONDS * 0.8)
    ProbeCycle.objects.get_or_create(pk=1, defaults={"started_at": now - 2 * window})
    claimed = ProbeCycle.objects.filter(pk=1, started_at__lte=now - window).update(started_at=now)
    if not claimed:
        logger.info("probe cycle skipped: another one started less than %ss ago", window.total_seconds())
        return None
    return check_now()


def record(results: list[ProbeResult]) -> None:
    for result in results:
        with transaction.atomic():
            DependencyCheck.objects.create(
                name=result.name,
                status=result.status,
                latency_ms=result.latency_ms,
                detail=result.detail,
                checked_at=result.checked_at,
            )
            failures = _update_status(result)
        _maybe_trip(result, failures)


def _update_status(result: ProbeResult) -> int:
    """Write the current row; return the consecutive failure count after this result."""
    row, _ = DependencyStatus.objects.select_for_update().get_or_create(
        name=result.name,
        defaults={"status": result.status, "latency_ms": result.latency_ms, "checked_at": result.checked_at},
    )
    # Up, or not configured: neither counts toward a trip.
    failures = F("consecutive_failures") + 1 if result.status == Health.DOWN else 0
    DependencyStatus.objects.filter(pk=row.pk).update(
        status=result.status,
        latency_ms=result.latency_ms,
        detail=result.detail,
        checked_at=result.checked_at,
        consecutive_failures=failures,
    )
    return DependencyStatus.objects.values_list("consecutive_failures", flat=True).get(pk=row.pk)


def _maybe_trip(result: ProbeResult, failures: int) -> None:
    trip = TRIPS.get(result.name)
    threshold = settings.AUTO_TRIP_AFTER_FAILURES
    if not (trip and settings.AUTO_TRIPS_ENABLED and threshold):
        return
    # Only on the check that reaches the threshold: if someone resumes while the
    # dependency is still down, the probes do not fight them every cycle after.
    if failures != threshold:
        return
    to_state, rule = trip
    try:
        kill_switch.halt(
            "global",
            to_state=to_state,
            actor=PROBES_ACTOR,
            source=f"rule:{rule}",
            reason=f"{result.name} failed {failures} consecutive checks: {result.detail}",
        )
    except TradingStateError as exc:
        # e.g. already HALTED when Polygon asks for REDUCING: stricter already holds.
        logger.info("trip %s not applied: %s", rule, exc)


def prune_history() -> int:
    cutoff = timezone.now() - timedelta(days=settings.DEPENDENCY_HISTORY_DAYS)
    deleted, _ = DependencyCheck.objects.older_than(cutoff).delete()
    return deleted
