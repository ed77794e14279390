"""The kill-switch drill: prove, end to end, that a halt stops trading and reaches people.

A drill acts on the drill scope alone (ops.trading.models.DRILL_SCOPE, whose strategy no
real order may carry), through the real parts:

  recover           only when an earlier drill died mid-run and left the drill scope HALTED:
                    resume it and (with DRILL_ALERTS) wait for its alert to resolve, so this
                    run's halt raises an alert of its own
  halt              the real kill-switch service halts the drill scope (audited, origin "drill")
  gate_refuses      a synthetic order for that scope goes through the real gate: refused (423)
  metric_shows_halt /metrics says investiq_killswitch_drill_halted 1
  alert_arrives     Prometheus fires KillSwitchDrillHalted and Alertmanager delivers it to
                    the console's webhook (only with DRILL_ALERTS on: skipped, with why, else)
  resume            the drill scope is resumed (always, whatever failed before)
  metric_shows_resume  /metrics says 0 again
  alert_resolves    the resolved notification arrives (with DRILL_ALERTS)

Each stage has a deadline and a measured duration; the first failure names its stage
and why, later stages before the resume are skipped, the resume always runs, and the
run is stored either way. A real scope HALTED while the drill runs (an incident began)
stands the drill down: its run is "aborted", neither passed nor failed, so it pages
nobody and leaves the last verdict on /metrics as it was. A database that cannot be
reached before the run starts raises DrillUnavailable and nothing is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ops.alerts.models import Alert, AlertStatus
from ops.drill import diagnosis
from ops.drill.models import DrillRun, Outcome
from ops.http import OutboundError, Timeout, request_text
from ops.monitoring.views import exposition
from ops.records.intake import TradeOrder
from ops.records.models import Position, Trade
from ops.trading import service
from ops.trading.errors import InvalidTransition, TradingStateError
from ops.trading.gate import TradeDenied, TradingStateUnavailable, submit_trade
from ops.trading.models import DRILL_SCOPE, State, TradingState
from ops.validators import DRILL_STRATEGY

logger = logging.getLogger(__name__)

DRILL_ALERT = "KillSwitchDrillHalted"
DRILL_GAUGE = "investiq_killswitch_drill_halted"
DRILL_SYMBOL = "DRILL"
POLL_SECONDS = 0.25
HTTP_TIMEOUT = Timeout(2.0, 5.0)


def time_limits() -> tuple[int, int]:
    """A drill task's soft and hard time limits (seconds). Soft: every stage to its
    deadline, three alert waits (recover, arrive, resolve) and the short stages, with room
    to store the run. It fails the stage it interrupts; the resume and the wait for its
    alert still run after it, and the hard limit leaves them that time (a worker killed
    before the resume leaves the drill scope HALTED until the next drill recovers it)."""
    alert, stage = settings.DRILL_ALERT_TIMEOUT_SECONDS, settings.DRILL_STAGE_TIMEOUT_SECONDS
    soft = int(3 * alert + 6 * stage) + 30
    return soft, soft + int(alert + 2 * stage) + 15


# A drill still "running" after this long died with its process (killed, host lost): past
# its task's hard limit, so the next drill never recovers a scope a live drill holds.
STALE_RUN_SECONDS = max(15 * 60, time_limits()[1] + 60)

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class DrillRefused(Exception):
    """The drill did not start (a real scope is HALTED, another drill runs): nothing written."""


class DrillUnavailable(Exception):
    """The database cannot be reached: no drill, nothing written."""


class StoodDown(Exception):
    """A real scope is HALTED: the drill stops where it is (an incident is not the time for
    a drill, and its stages could no longer tell the drill's halt from the real one)."""


def stand_down_if_incident() -> None:
    halted = service.halted_real_scopes()
    if halted:
        raise StoodDown(f"a real scope is HALTED ({', '.join(halted)}): no drill during an incident")


class StageFailed(Exception):
    def __init__(self, detail: str, observed: dict | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.observed = observed or {}


@dataclass
class StageResult:
    detail: str
    observed: dict = field(default_factory=dict)


@dataclass
class Drill:
    run: DrillRun
    actor: service.Actor
    halted_at: datetime | None = None
    resumed_at: datetime | None = None
    alert_id: int | None = None
    failed: bool = False
    stood_down: str = ""  # why, once a stage stood the drill down

    @property
    def stopped(self) -> str:
        """Why the stages before the resume are skipped now; "" while the drill goes on."""
        if self.failed:
            return "an earlier stage failed"
        return "the drill stood down" if self.stood_down else ""

    def stage(self, name: str, deadline: float, body: Callable[[float], StageResult | None]) -> bool:
        """Run one stage against its deadline (seconds), record it; True if it passed.
        A body that returns None had nothing to do: no stage is recorded."""
        started, clock = timezone.now(), time.monotonic()
        try:
            result = body(clock + deadline)
            if result is None:
                return True  # nothing to do: no stage to record
            outcome, detail, observed = PASSED, result.detail, result.observed
        except StoodDown as exc:
            outcome, detail, observed = SKIPPED, f"stood down: {exc}", {}
            if not self.stood_down:
                self.stood_down = f"{name}: {exc}"
        except StageFailed as exc:
            outcome, detail, observed = FAILED, exc.detail, exc.observed
        except (DatabaseError, TradingStateError, OutboundError) as exc:
            outcome, detail, observed = FAILED, f"{type(exc).__name__}: {exc}", {}
        except Exception as exc:
            # A bug is a failed stage too, never a passed drill; the resume still runs.
            logger.exception("drill %s stage %s: unexpected error", self.run.pk, name)
            outcome, detail, observed = FAILED, f"unexpected error: {type(exc).__name__}: {exc}", {}
        self._record(name, started, time.monotonic() - clock, outcome, detail, observed, deadline)
        if outcome == FAILED and not self.failed:
            self.failed = True
            self.run.failed_stage = name
            self.run.failure = f"{name}: {detail}"
        return outcome == PASSED

    def skip(self, name: str, why: str) -> None:
        self._record(name, timezone.now(), 0.0, SKIPPED, why, {}, None)

    def _record(self, name, started, seconds, outcome, detail, observed, deadline) -> None:
        self.run.stages.append(
            {
                "name": name,
                "started": started.isoformat(),
                "ended": timezone.now().isoformat(),
                "duration_s": round(seconds, 3),
                "deadline_s": deadline,
                "outcome": outcome,
                "detail": detail,
                "observed": observed,
            }
        )
        logger.info("drill %s stage %s: %s (%.3f s) %s", self.run.pk, name, outcome, seconds, detail)


def run_drill(*, actor: service.Actor, started_by: str, origin: str) -> DrillRun:
    """One drill, stored; raises DrillRefused or DrillUnavailable when it cannot start."""
    try:
        run = _start(started_by, origin)
    except DatabaseError as exc:
        raise DrillUnavailable(f"the database cannot be reached, no drill was run: {exc}") from exc
    drill = Drill(run=run, actor=actor)
    halt_deadline = settings.DRILL_STAGE_TIMEOUT_SECONDS
    alert_deadline = settings.DRILL_ALERT_TIMEOUT_SECONDS
    try:
        steps = [
            ("gate_refuses", halt_deadline, lambda until: _gate_refuses()),
            ("metric_shows_halt", halt_deadline, lambda until: _metric_shows(1, until)),
        ]
        # Inside a stage: a database error here is a failed stage, never a run that skips
        # its halt and is stored as passed.
        drill.stage("recover", alert_deadline, lambda until: _recover(drill, until))
        if drill.failed:
            for name in ("halt", *(name for name, _, _ in steps)):
                drill.skip(name, "the drill scope could not be recovered")
        elif drill.stage("halt", halt_deadline, lambda until: _halt(drill)):
            for name, deadline, body in steps:
                if drill.stopped:
                    drill.skip(name, drill.stopped)
                else:
                    drill.stage(name, deadline, body)
        else:
            for name, _, _ in steps:
                drill.skip(name, "the drill stood down" if drill.stood_down else "the halt failed")
        if not settings.DRILL_ALERTS:
            drill.skip("alert_arrives", NO_MONITORING)
        elif drill.stopped:
            drill.skip("alert_arrives", drill.stopped)
        else:
            drill.stage("alert_arrives", alert_deadline, lambda until: _alert_arrives(drill, until))
    finally:
        # Always: whatever failed above, the drill scope ends ACTIVE.
        resumed = drill.stage("resume", halt_deadline, lambda until: _resume(drill))
        if resumed:
            drill.stage("metric_shows_resume", halt_deadline, lambda until: _metric_shows(0, until))
        else:
            drill.skip("metric_shows_resume", "the resume failed")
        if not settings.DRILL_ALERTS:
            drill.skip("alert_resolves", NO_MONITORING)
        elif drill.alert_id is None or not resumed:
            drill.skip("alert_resolves", "no drill alert arrived to be resolved")
        else:
            drill.stage("alert_resolves", alert_deadline, lambda until: _alert_resolves(drill, until))
        # Passed only with a halt that passed: a drill that halted nothing proved nothing.
        halted = (run.stage("halt") or {}).get("outcome") == PASSED
        if drill.failed:
            run.outcome = Outcome.FAILED
        elif drill.stood_down:
            # Not a verdict on the kill switch: nothing pages, the last verdict stands.
            run.outcome, run.failure = Outcome.ABORTED, f"stood down at {drill.stood_down}"
        else:
            run.outcome = Outcome.PASSED if halted else Outcome.FAILED
        run.ended_at = timezone.now()
        try:
            run.save(update_fields=["ended_at", "outcome", "failed_stage", "failure", "stages"])
        except DatabaseError as exc:
            # The database went away mid-drill: the run stays "running" and goes stale.
            raise DrillUnavailable(f"the drill ran but could not be stored: {exc}") from exc
    return run


NO_MONITORING = (
    "DRILL_ALERTS is off: no Prometheus and Alertmanager are configured for drills here "
    "(set DRILL_ALERTS=true where they scrape this app and deliver to its webhook)"
)


def _start(started_by: str, origin: str) -> DrillRun:
    halted = service.halted_real_scopes()
    if halted:
        raise DrillRefused(service.NO_DRILL_DURING_INCIDENT.format(scopes=", ".join(halted)))
    with transaction.atomic():
        # One drill at a time: the row lock queues a second starter until the first
        # has stored its running row, which the second then sees.
        TradingState.objects.get_or_create(scope=DRILL_SCOPE)
        TradingState.objects.select_for_update().get(scope=DRILL_SCOPE)
        cutoff = timezone.now() - timedelta(seconds=STALE_RUN_SECONDS)
        running = DrillRun.objects.filter(outcome=Outcome.RUNNING, started_at__gte=cutoff).first()
        if running is not None:
            raise DrillRefused(f"Another drill is running (started {running.started_at:%H:%M:%S} UTC).")
        return DrillRun.objects.create(started_by=started_by, origin=origin)


def _recover(drill: Drill, until: float) -> StageResult | None:
    """Resume the drill scope an interrupted drill left HALTED (None, and no stage
    recorded, when it is ACTIVE). _start let this run begin, so no live drill holds the
    scope: a dead one left it so. With DRILL_ALERTS, also wait for that drill's
    KillSwitchDrillHalted to resolve at the webhook: while it still fires, this run's halt
    would raise no alert of its own and alert_arrives would fail (and page) for a drill
    that found the chain working."""
    left = TradingState.objects.filter(scope=DRILL_SCOPE).exclude(state=State.ACTIVE).first()
    if left is None:
        return None
    resumed = _transition(
        drill, State.ACTIVE, f"kill-switch drill #{drill.run.pk}: recovering from an interrupted drill"
    )
    if not settings.DRILL_ALERTS:
        return resumed
    # That drill's alert only: it started after that halt (less clock skew between
    # Prometheus and this host). An older one whose resolution was lost is not waited for.
    firing = Alert.objects.filter(
        alertname=DRILL_ALERT, status=AlertStatus.FIRING, starts_at__gte=left.since - CLOCK_SKEW
    )
    while firing.exists():
        if time.monotonic() >= until:
            raise StageFailed(
                f"the interrupted drill's {DRILL_ALERT} did not resolve within "
                f"{settings.DRILL_ALERT_TIMEOUT_SECONDS:g} s of the resume: "
                f"{diagnosis.why_not_resolved(DRILL_ALERT)}",
                resumed.observed,
            )
        time.sleep(POLL_SECONDS)
    return StageResult(f"{resumed.detail}; its {DRILL_ALERT} resolved", resumed.observed)


CLOCK_SKEW = timedelta(minutes=1)


def _halt(drill: Drill) -> StageResult:
    try:
        stage = _transition(drill, State.HALTED, f"kill-switch drill #{drill.run.pk}")
    except InvalidTransition:
        stand_down_if_incident()  # refused because an incident began: say so
        raise
    # Committed when drill_transition returns: from here every gate read sees HALTED.
    drill.halted_at = timezone.now()
    return stage


def _transition(drill: Drill, to_state: str, reason: str) -> StageResult:
    """The drill scope to `to_state` through the kill switch's own drill_transition."""
    result = service.drill_transition(to_state, reason=reason, actor=drill.actor)
    event = result.event
    return StageResult(
        f"{DRILL_SCOPE} {to_state} (event #{event.pk})" if event else f"{DRILL_SCOPE} was already {to_state}",
        {"event_id": event.pk if event else None, "state": result.state.state},
    )


class _RolledBack(Exception):
    pass


def _gate_refuses() -> StageResult:
    """The engine's order, for the drill scope, through submit_trade() as the API calls it.

    The API's form would refuse the reserved strategy before the gate is reached, so the
    drill calls the gate itself, like the API view does after its form. It runs in a
    transaction that is always rolled back: even a gate that wrongly accepted would
    leave no trade behind, and the stage fails saying so.
    """
    client_order_id = f"drill-{time.time_ns()}"
    order = TradeOrder(
        client_order_id=client_order_id,
        symbol=DRILL_SYMBOL,
        side="buy",
        quantity=Decimal(1),
        price=Decimal(1),
        strategy=DRILL_STRATEGY,
    )
    refusal: TradeDenied | None = None
    try:
        with transaction.atomic():
            try:
                submit_trade(order)
            except TradeDenied as exc:
                refusal = exc
            raise _RolledBack
    except _RolledBack:
        pass
    except TradingStateUnavailable as exc:
        raise StageFailed(f"the gate could not read the state (it would answer 503): {exc}") from exc
    written = (
        Trade.objects.filter(client_order_id=client_order_id).exists()
        or Position.objects.filter(strategy=DRILL_STRATEGY).exists()
    )
    observed = {"client_order_id": client_order_id, "written": written}
    if refusal is None:
        raise StageFailed("the gate ACCEPTED an order for the halted drill scope (not kept)", observed)
    observed.update(status=423, error=refusal.code, scope=refusal.effective.scope)
    if written:
        raise StageFailed("the gate refused the order but something was written", observed)
    if refusal.effective.scope != DRILL_SCOPE:
        # A real halt since the drill's own (ties go to the broadest scope) refuses first.
        stand_down_if_incident()
        raise StageFailed(f"refused for {refusal.effective.scope}, not for the drill scope", observed)
    return StageResult(f"423 {refusal.code} for {refusal.effective.scope}, nothing written", observed)


def _read_gauge() -> tuple[float | None, str]:
    """The drill gauge's value and where it was read from."""
    if settings.DRILL_ALERTS:
        # Over HTTP, as Prometheus reads it: the same URL, token and worker pool.
        url = f"{settings.APP_URL.rstrip('/')}/metrics"
        headers = {"Authorization": f"Bearer {settings.METRICS_TOKEN}"} if settings.METRICS_TOKEN else None
        text, where = request_text("GET", url, timeout=HTTP_TIMEOUT, headers=headers).body, url
    else:
        text, where = exposition().decode(), "in-process /metrics (DRILL_ALERTS off)"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == DRILL_GAUGE:
                return sample.value, where
    return None, where


def _metric_shows(expected: int, until: float) -> StageResult:
    value, where = None, ""
    while True:
        value, where = _read_gauge()
        if value == expected:
            return StageResult(f"{DRILL_GAUGE} {expected} at {where}", {"value": value, "source": where})
        if time.monotonic() >= until:
            seen = "absent" if value is None else f"{value:g}"
            raise StageFailed(
                f"{DRILL_GAUGE} was {seen}, not {expected}, at {where} by the deadline",
                {"value": value, "source": where},
            )
        time.sleep(POLL_SECONDS)


def _drill_alerts(since: datetime):
    return Alert.objects.filter(alertname=DRILL_ALERT, first_received_at__gte=since).order_by(
        "first_received_at"
    )


def _alert_arrives(drill: Drill, until: float) -> StageResult:
    before = diagnosis.webhook_failures()
    while True:
        alert = _drill_alerts(drill.halted_at).first()
        if alert is not None:
            drill.alert_id = alert.pk
            seconds = (alert.first_received_at - drill.halted_at).total_seconds()
            return StageResult(
                f"{DRILL_ALERT} arrived at the webhook {seconds:.1f} s after the halt",
                {
                    "alert_id": alert.pk,
                    "fingerprint": alert.fingerprint,
                    "seconds_since_halt": round(seconds, 3),
                },
            )
        if time.monotonic() >= until:
            why = diagnosis.why_no_alert(DRILL_ALERT, before)
            raise StageFailed(
                f"alert did not arrive within {settings.DRILL_ALERT_TIMEOUT_SECONDS:g} s: {why}",
                {"webhook_failures_before": before},
            )
        time.sleep(POLL_SECONDS)


def _resume(drill: Drill) -> StageResult:
    stage = _transition(drill, State.ACTIVE, f"end of kill-switch drill #{drill.run.pk}")
    drill.resumed_at = timezone.now()
    return stage


def _alert_resolves(drill: Drill, until: float) -> StageResult:
    while True:
        alert = Alert.objects.get(pk=drill.alert_id)
        if alert.status == AlertStatus.RESOLVED:
            seconds = (alert.last_received_at - drill.resumed_at).total_seconds()
            return StageResult(
                f"{DRILL_ALERT} resolved at the webhook {seconds:.1f} s after the resume",
                {"alert_id": alert.pk, "seconds_since_resume": round(seconds, 3)},
            )
        if time.monotonic() >= until:
            raise StageFailed(
                f"the resolved alert did not arrive within {settings.DRILL_ALERT_TIMEOUT_SECONDS:g} s: "
                f"{diagnosis.why_not_resolved(DRILL_ALERT)}",
                {"alert_id": alert.pk},
            )
        time.sleep(POLL_SECONDS)
