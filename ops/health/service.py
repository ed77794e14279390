"""Recording probe results, the automatic trips, and the periodic cycle."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
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
    for index, result in enumerate(results):
        try:
            # The check, the failure count and the trip it earns commit together: a worker
            # killed between them would otherwise leave a failure at the threshold on
            # record with no trip, lost for good if the next check is up.
            with transaction.atomic():
                DependencyCheck.objects.create(
                    name=result.name,
                    status=result.status,
                    latency_ms=result.latency_ms,
                    detail=result.detail,
                    checked_at=result.checked_at,
                )
                _update_status(result)
                _apply_trip(result)
        except DatabaseError:
            if not _connected():
                # The database itself is gone: every further write would pay its own
                # connect attempt (connect_timeout each, ~15 s for the five in a network
                # partition) to fail the same way. One line, not a traceback per result.
                unrecorded = ", ".join(r.name for r in results[index:])
                logger.error("database unreachable: probe results not recorded: %s", unrecorded)
                return
            # One result that cannot be written must not cost the others theirs.
            logger.exception("could not record the %s probe result", result.name)


def _connected() -> bool:
    """Whether the default connection is open and answers (after a failed write)."""
    return connection.connection is not None and connection.is_usable()


def _update_status(result: ProbeResult) -> None:
    row, _ = DependencyStatus.objects.select_for_update().get_or_create(
        name=result.name,
        defaults={
            "status": result.status,
            "latency_ms": result.latency_ms,
            "checked_at": result.checked_at,
            "status_since": result.checked_at,
        },
    )
    down = result.status == Health.DOWN
    changed = row.status != result.status
    DependencyStatus.objects.filter(pk=row.pk).update(
        status_since=result.checked_at if changed else row.status_since,
        status=result.status,
        latency_ms=result.latency_ms,
        detail=result.detail,
        checked_at=result.checked_at,
        # Up, or not configured: neither counts toward a trip, and either ends the outage.
        consecutive_failures=row.consecutive_failures + 1 if down else 0,
        tripped=row.tripped if down else False,
    )


def _apply_trip(result: ProbeResult) -> None:
    """Trip trading once per outage, at the first check at or past the threshold."""
    threshold = settings.AUTO_TRIP_AFTER_FAILURES
    if result.name not in TRIPS or not (settings.AUTO_TRIPS_ENABLED and threshold):
        return
    with transaction.atomic():
        # The halt and the `tripped` mark commit together (and with the check that
        # earned them, see record()): a crash between them cannot leave a trip
        # unrecorded (and so repeated over a person's later resume).
        row = DependencyStatus.objects.select_for_update().get(name=result.name)
        if row.tripped or row.status != Health.DOWN or row.consecutive_failures < threshold:
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
        DependencyStatus.objects.filter(pk=row.pk).update(tripped=True)


def prune_history() -> int:
    cutoff = timezone.now() - timedelta(days=settings.DEPENDENCY_HISTORY_DAYS)
    deleted, _ = DependencyCheck.objects.older_than(cutoff).delete()
    return deleted
