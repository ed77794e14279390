"""Broker actions on a halt: cancel every open order at Alpaca, through an outbox.

A halt that asks for it leaves its row (TradingEvent or BrokerCancellation) with
broker_outcome PENDING, in the halt's transaction, and queues a task on commit. The
task calls Alpaca; a transient failure (timeout, connection, 5xx, 429) is retried with
backoff up to BROKER_CANCEL_MAX_ATTEMPTS, anything else is final. If the task is lost
(worker crash, flushed queue), the beat sweep re-queues rows left pending. The outcome
is written once, by compare-and-set from PENDING, so a late duplicate changes nothing.
A duplicate may call Alpaca twice; cancelling all open orders twice is harmless.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from ops import alpaca
from ops.http import OutboundError
from ops.trading.models import BrokerCancellation, BrokerOutbox, BrokerOutcome, TradingEvent

logger = logging.getLogger(__name__)


NOT_CONFIGURED = "Alpaca is not configured (ALPACA_BASE_URL, ALPACA_KEY_ID, ALPACA_SECRET_KEY)."
# Task arguments are ids, not objects: (kind, pk).
KINDS: dict[str, type[TradingEvent | BrokerCancellation]] = {
    "event": TradingEvent,
    "cancellation": BrokerCancellation,
}
# Worth another try: the broker may answer next time. Anything else (refused
# credentials, an answer we cannot read, a 4xx) would fail the same way again.
TRANSIENT_KINDS = ("timeout", "connection")
# Retries wait base * 2^(n-1) seconds, at most this; the sweep's staleness threshold
# (BROKER_CANCEL_STALE_SECONDS) is well above it, so it does not re-queue a live retry.
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class Attempt:
    ok: bool
    detail: dict[str, Any]
    transient: bool = False


def cancel_open_orders() -> Attempt:
    """DELETE /v2/orders once. Never raises: the outcome says what happened."""
    if not alpaca.configured():
        return Attempt(False, {"ok": False, "error": NOT_CONFIGURED})
    try:
        response = alpaca.cancel_all_orders()
    except OutboundError as exc:
        transient = exc.kind in TRANSIENT_KINDS or (
            exc.kind == "http_error" and (exc.status == 429 or (exc.status or 0) >= 500)
        )
        return Attempt(False, {"ok": False, "error": exc.detail, "kind": exc.kind}, transient)
    if not isinstance(response.body, list) or not all(isinstance(item, dict) for item in response.body):
        return Attempt(
            False,
            {
                "ok": False,
                "error": f"malformed answer: expected a list of orders, got {response.body!r:.200}",
                "kind": "malformed",
            },
        )
    cancelled = [str(item.get("id")) for item in response.body if item.get("status") in (200, 204, None)]
    failed = [
        {"id": str(item.get("id")), "status": item.get("status")}
        for item in response.body
        if item.get("status") not in (200, 204, None)
    ]
    return Attempt(not failed, {"ok": not failed, "cancelled": cancelled, "failed": failed})


def kind_of(row: BrokerOutbox) -> str:
    return next(kind for kind, model in KINDS.items() if isinstance(row, model))


def enqueue_cancellation(row: BrokerOutbox) -> None:
    """Queue the call for when the caller's transaction commits (nothing if it rolls back).

    The halt has committed by then. If the broker (Redis) is down, that is exactly when
    people halt: the error must not turn a committed halt into a traceback or a 500. The
    row stays PENDING, and the beat sweep queues it again once the broker is back.
    """
    from ops.trading.tasks import cancel_open_orders_task  # the task module imports this one

    kind, pk = kind_of(row), row.pk

    def send() -> None:
        try:
            cancel_open_orders_task.delay(kind, pk)
        except Exception as exc:  # kombu's OperationalError, a timeout, DNS: any of them
            logger.error("broker cancel %s %s not queued (%s); the sweep will queue it again", kind, pk, exc)

    transaction.on_commit(send)


def attempt_cancellation(kind: str, pk: int) -> float | None:
    """One try for a pending row. Returns the seconds to wait before the next try, or
    None when there is nothing more to do (outcome recorded, or already final)."""
    model = KINDS[kind]
    # Claim the attempt on the row itself: the count survives lost tasks and the
    # sweep's re-queues, so the number of tries stays bounded whatever happens.
    claimed = (
        model.objects.pending()
        .filter(pk=pk)
        .update(broker_attempts=F("broker_attempts") + 1, broker_attempted_at=timezone.now())
    )
    if not claimed:
        return None  # recorded already (a duplicate task), or never asked for
    attempts = model.objects.values_list("broker_attempts", flat=True).get(pk=pk)
    limit = settings.BROKER_CANCEL_MAX_ATTEMPTS
    if attempts > limit:
        # Tries were claimed but never finished (crashes): stop, and say so.
        _record(model, pk, BrokerOutcome.FAILED, {"ok": False, "error": f"no answer after {limit} attempts"})
        return None
    attempt = cancel_open_orders()
    if attempt.ok:
        _record(model, pk, BrokerOutcome.SUCCEEDED, attempt.detail)
        return None
    if not attempt.transient:
        _record(model, pk, BrokerOutcome.FAILED, attempt.detail)
        return None
    if attempts >= limit:
        error = f"{attempt.detail['error']} (gave up after {attempts} attempts)"
        _record(model, pk, BrokerOutcome.FAILED, {**attempt.detail, "error": error})
        return None
    # Still PENDING: keep the last error on the row so a person sees why it is waiting.
    model.objects.pending().filter(pk=pk).update(broker_detail={**attempt.detail, "attempts": attempts})
    logger.warning("broker cancel for %s %s, attempt %s: %s; will retry", kind, pk, attempts, attempt.detail)
    return min(settings.BROKER_CANCEL_RETRY_BASE_SECONDS * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)


def _record(model: type[BrokerOutbox], pk: int, outcome: str, detail: dict[str, Any]) -> None:
    # Compare-and-set from PENDING: the outcome is written once and never overwritten.
    written = model.objects.pending().filter(pk=pk).update(broker_outcome=outcome, broker_detail=detail)
    if written:
        log = logger.info if outcome == BrokerOutcome.SUCCEEDED else logger.error
        log("broker cancel for %s %s: %s %s", model._meta.model_name, pk, outcome, detail)


def requeue_stale() -> int:
    """Beat: re-queue rows left pending with no attempt for a while (their task was lost)."""
    before = timezone.now() - timedelta(seconds=settings.BROKER_CANCEL_STALE_SECONDS)
    from ops.trading.tasks import cancel_open_orders_task  # the task module imports this one

    queued = 0
    for kind, model in KINDS.items():
        for pk in model.objects.stale(before).values_list("pk", flat=True):
            cancel_open_orders_task.delay(kind, pk)
            queued += 1
    if queued:
        logger.warning("re-queued %s broker cancellation(s) left pending", queued)
    return queued


def pending_count() -> int:
    return sum(model.objects.pending().count() for model in KINDS.values())


FAILED_WINDOW = timedelta(hours=24)


def recently_failed_count(now=None) -> int:
    """Cancel-all requests that ended FAILED within FAILED_WINDOW: orders the broker may
    still be working that someone must cancel by hand. (Halts are rare, so these tables
    stay small; the outcome filter keeps the count to the few failed rows.)"""
    since = (now or timezone.now()) - FAILED_WINDOW
    return sum(
        model.objects.filter(broker_outcome=BrokerOutcome.FAILED, broker_attempted_at__gte=since).count()
        for model in KINDS.values()
    )


def unresolved_failed_count() -> int:
    """Cancel-all requests that ended FAILED after the last one that SUCCEEDED, however
    old: orders may be working at the broker until someone acts. Acting ends it: a new
    cancel-all (a halt with "cancel open orders") that succeeds, which after a cancel by
    hand in Alpaca's own dashboard simply finds nothing left to cancel."""
    succeeded = [
        model.objects.filter(broker_outcome=BrokerOutcome.SUCCEEDED).aggregate(
            last=Max("broker_attempted_at")
        )["last"]
        for model in KINDS.values()
    ]
    last_success = max((when for when in succeeded if when is not None), default=None)
    after = {"broker_attempted_at__gt": last_success} if last_success else {}
    return sum(
        model.objects.filter(broker_outcome=BrokerOutcome.FAILED, **after).count() for model in KINDS.values()
    )


def wait_for_outcome(row: BrokerOutbox, seconds: float | None = None) -> BrokerOutbox:
    """Re-read `row` until its outcome is known or `seconds` pass, for telling a person.

    Polling a few seconds: the web request or command waits, the halt does not.
    """
    seconds = settings.BROKER_CANCEL_WAIT_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    while True:
        row.refresh_from_db(fields=["broker_outcome", "broker_detail", "broker_attempts"])
        if row.broker_outcome != BrokerOutcome.PENDING or time.monotonic() >= deadline:
            return row
        time.sleep(0.25)
