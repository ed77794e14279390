"""Recording probe results, the automatic trips, and the periodic cycle."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
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
        try:
            with transaction.atomic():
                DependencyCheck.objects.create(
                    name=result.name,
                    status=result.status,
                    latency_ms=result.latency_ms,
                    detail=result.detail,
                    checked_at=result.checked_at,
                )
                _update_status(result)
            _apply_pending_trip(result)
        except DatabaseError:
            # One result that cannot be written must not cost the others theirs.
            logger.exception("could not record the %s probe result", result.name)


def _update_status(result: ProbeResult) -> None:
    row, _ = DependencyStatus.objects.select_for_update().get_or_create(
        name=result.name,
        defaults={"status": result.status, "latency_ms": result.latency_ms, "checked_at": result.checked_at},
    )
    if result.status == Health.DOWN:
        failures = row.consecutive_failures + 1
        threshold = settings.AUTO_TRIP_AFTER_FAILURES
        # Only on the check that reaches the threshold: if someone resumes while the
        # dependency is still down, the probes do not fight them every cycle after.
        pending = row.trip_pending or (result.name in TRIPS and failures == threshold)
    else:
        failures, pending = 0, False  # up, or not configured: neither counts toward a trip
    DependencyStatus.objects.filter(pk=row.pk).update(
        status=result.status,
        latency_ms=result.latency_ms,
        detail=result.detail,
        checked_at=result.checked_at,
        consecutive_failures=failures,
        trip_pending=pending,
    )


def _apply_pending_trip(result: ProbeResult) -> None:
    row = DependencyStatus.objects.get(name=result.name)
    if not row.trip_pending:
        return
    if not (settings.AUTO_TRIPS_ENABLED and settings.AUTO_TRIP_AFTER_FAILURES):
        DependencyStatus.objects.filter(pk=row.pk).update(trip_pending=False)
        return
    to_state, rule = TRIPS[result.name]
    try:
        kill_switch.halt(
            "global",
            to_state=to_state,
            actor=PROBES_ACTOR,
            source=f"rule:{rule}",
            reason=f"{result.name} failed {row.consecutive_failures} consecutive checks: {result.detail}",
        )
    except TradingStateError as exc:
        # e.g. already HALTED when Polygon asks for REDUCING: stricter already holds.
        logger.info("trip %s not applied: %s", rule, exc)
    # Any other exception leaves trip_pending set: the next cycle tries again.
    DependencyStatus.objects.filter(pk=row.pk).update(trip_pending=False)


def prune_history() -> int:
    cutoff = timezone.now() - timedelta(days=settings.DEPENDENCY_HISTORY_DAYS)
    deleted, _ = DependencyCheck.objects.older_than(cutoff).delete()
    return deleted
