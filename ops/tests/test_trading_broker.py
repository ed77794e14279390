"""Cancel-on-halt as an outbox, against a local HTTP server playing Alpaca.

Most tests drive the task's plain function (broker.attempt_cancellation) the way a
worker would; the last ones run the real chain with a Celery worker on Redis.
"""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.test import Client
from django.utils import timezone
from werkzeug import Response

from ops.tests.conftest import celery_worker, database_url, make_user, start_process, stop_process
from ops.tests.test_metrics import scrape, value
from ops.trading import broker, service
from ops.trading.errors import InvalidTransition
from ops.trading.models import BrokerCancellation, State, TradingEvent, TradingState
from ops.trading.tasks import cancel_open_orders_task

ORDERS_JSON = '[{"id": "ord-a", "status": 200}, {"id": "ord-b", "status": 200}]'


@pytest.fixture
def alpaca(httpserver, settings):
    settings.ALPACA_BASE_URL = httpserver.url_for("/")
    settings.ALPACA_KEY_ID = "key-id"
    settings.ALPACA_SECRET_KEY = "secret"
    settings.ALPACA_CONNECT_TIMEOUT = 1.0
    settings.ALPACA_READ_TIMEOUT = 0.5
    settings.BROKER_CANCEL_MAX_ATTEMPTS = 3
    return httpserver


@pytest.fixture
def operator_actor(transactional_db):
    return service.Actor.of(make_user("otto", "ops_operator"))


@pytest.fixture
def queued(monkeypatch) -> list[tuple[str, int]]:
    """The task messages sent, instead of a broker: (kind, pk) each."""
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(cancel_open_orders_task, "delay", lambda kind, pk: sent.append((kind, pk)))
    return sent


@pytest.fixture
def inline_worker(monkeypatch) -> None:
    """A worker that runs each queued task at once, retries included (waits skipped)."""

    def run(kind: str, pk: int) -> None:
        while broker.attempt_cancellation(kind, pk) is not None:
            pass

    monkeypatch.setattr(cancel_open_orders_task, "delay", run)


def state_seen_by_another_connection() -> str:
    """What any other process would read now: proves the halt committed before the call."""
    try:
        return TradingState.objects.get(scope="global").state
    finally:
        connections.close_all()  # this runs on the HTTP server's thread


def respond_after_checking(seen: list, response: Response):
    def handler(request):
        seen.append(state_seen_by_another_connection())
        assert request.headers["APCA-API-KEY-ID"] == "key-id"
        return response

    return handler


def halt_with_cancel(actor: service.Actor) -> service.TransitionResult:
    return service.halt("global", reason="runaway strategy", actor=actor, cancel_orders=True)


def run_once(row) -> float | None:
    return broker.attempt_cancellation(broker.kind_of(row), row.pk)


# --- the halt only queues the call ---------------------------------------------------------


def test_a_halt_with_cancel_leaves_the_event_pending_and_queues_the_call_on_commit(
    alpaca, operator_actor, queued
):
    result = halt_with_cancel(operator_actor)
    event = TradingEvent.objects.get()
    assert event == result.event and event.broker_outcome == "pending"
    assert queued == [("event", event.pk)]
    assert alpaca.log == []  # the halt itself never waits on the broker


def test_a_rolled_back_halt_queues_nothing(alpaca, operator_actor, queued):
    with pytest.raises(RuntimeError), transaction.atomic():
        halt_with_cancel(operator_actor)
        raise RuntimeError("rolled back")
    assert queued == [] and not TradingEvent.objects.exists()


def test_a_halt_without_cancel_queues_no_broker_call(alpaca, operator_actor, queued):
    service.halt("global", reason="x", actor=operator_actor)
    assert queued == [] and alpaca.log == []
    assert TradingEvent.objects.get().broker_outcome == "not_requested"


def test_cancelling_is_only_offered_for_global_halts(operator_actor):
    with pytest.raises(InvalidTransition, match="account-wide"):
        service.halt("symbol:AAPL", reason="x", actor=operator_actor, cancel_orders=True)


# --- one attempt, as the worker runs it ------------------------------------------------------


def test_a_successful_cancel_is_recorded_on_the_event(alpaca, operator_actor, queued):
    seen: list[str] = []
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_handler(
        respond_after_checking(seen, Response(ORDERS_JSON, status=207, content_type="application/json"))
    )
    event = halt_with_cancel(operator_actor).event
    assert run_once(event) is None
    assert seen == [State.HALTED]
    event.refresh_from_db()
    assert (event.broker_outcome, event.broker_attempts) == ("succeeded", 1)
    assert event.broker_detail["cancelled"] == ["ord-a", "ord-b"]


@pytest.mark.parametrize(
    "body,status,expected",
    [
        ("<html>not json</html>", 200, "not JSON"),
        ('{"unexpected": "object"}', 207, "malformed answer"),
        ('{"message": "forbidden"}', 403, "credentials refused"),
        ('{"message": "unauthorized"}', 401, "credentials refused"),
        ('{"message": "bad request"}', 422, "HTTP 422"),
    ],
    ids=["not-json", "wrong-shape", "403", "401", "422"],
)
def test_an_answer_that_would_fail_again_is_final_at_once(
    alpaca, operator_actor, queued, body, status, expected
):
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_data(body, status=status)
    event = halt_with_cancel(operator_actor).event
    assert run_once(event) is None  # no retry
    event.refresh_from_db()
    assert (event.broker_outcome, event.broker_attempts) == ("failed", 1)
    assert expected in event.broker_detail["error"]
    assert len(alpaca.log) == 1
    assert TradingState.objects.get(scope="global").state == State.HALTED  # the halt stands


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_transient_failure_is_retried_with_backoff_then_succeeds(alpaca, operator_actor, queued, status):
    alpaca.expect_ordered_request("/v2/orders", method="DELETE").respond_with_data("busy", status=status)
    alpaca.expect_ordered_request("/v2/orders", method="DELETE").respond_with_data("busy", status=status)
    alpaca.expect_ordered_request("/v2/orders", method="DELETE").respond_with_json([], status=207)
    event = halt_with_cancel(operator_actor).event
    first, second = run_once(event), run_once(event)
    assert 0 < first < second  # backoff grows
    event.refresh_from_db()
    assert event.broker_outcome == "pending"  # still owed, and why is on the row
    assert f"HTTP {status}" in event.broker_detail["error"] and event.broker_attempts == 2
    assert "will be retried" in event.broker_summary
    assert run_once(event) is None
    event.refresh_from_db()
    assert (event.broker_outcome, event.broker_attempts) == ("succeeded", 3)


@pytest.fixture
def hanging_alpaca(settings):
    """A server that takes connections and never answers (a listening socket nobody
    reads): each try ends in the read timeout, and no request is left behind for the
    next test, as a sleeping handler on the shared HTTP server would."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        settings.ALPACA_BASE_URL = f"http://127.0.0.1:{server.getsockname()[1]}/"
        settings.ALPACA_KEY_ID = settings.ALPACA_SECRET_KEY = "x"
        settings.ALPACA_CONNECT_TIMEOUT = 1.0
        settings.ALPACA_READ_TIMEOUT = 0.5
        settings.BROKER_CANCEL_MAX_ATTEMPTS = 3
        yield


def test_a_hanging_broker_is_retried_then_recorded_failed_after_the_last_attempt(
    hanging_alpaca, operator_actor, queued
):
    event = halt_with_cancel(operator_actor).event
    assert run_once(event) is not None and run_once(event) is not None
    assert run_once(event) is None
    event.refresh_from_db()
    assert (event.broker_outcome, event.broker_attempts) == ("failed", 3)
    assert "no answer within 0.5s" in event.broker_detail["error"]
    assert "gave up after 3 attempts" in event.broker_detail["error"]


def test_an_unreachable_broker_is_retried(settings, operator_actor, queued):
    settings.ALPACA_BASE_URL = "http://127.0.0.1:1"
    settings.ALPACA_KEY_ID = settings.ALPACA_SECRET_KEY = "x"
    event = halt_with_cancel(operator_actor).event
    assert run_once(event) is not None
    event.refresh_from_db()
    assert event.broker_outcome == "pending" and "connection failed" in event.broker_detail["error"]


def test_an_unconfigured_broker_is_final_not_crashed(settings, operator_actor, queued):
    settings.ALPACA_KEY_ID = ""
    event = halt_with_cancel(operator_actor).event
    assert run_once(event) is None
    event.refresh_from_db()
    assert event.broker_outcome == "failed" and "not configured" in event.broker_detail["error"]


def test_the_outcome_is_written_once_and_a_duplicate_task_calls_nobody(alpaca, operator_actor, queued):
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_json([], status=207)
    event = halt_with_cancel(operator_actor).event
    run_once(event)
    assert run_once(event) is None  # e.g. re-queued by the sweep while the first ran
    assert len(alpaca.log) == 1
    event.refresh_from_db()
    assert (event.broker_outcome, event.broker_attempts) == ("succeeded", 1)


def test_attempts_lost_to_crashes_still_end_in_failed(alpaca, operator_actor, queued, settings):
    event = halt_with_cancel(operator_actor).event
    # Every try was claimed and then the worker died before recording anything.
    TradingEvent.objects.filter(pk=event.pk).update(broker_attempts=settings.BROKER_CANCEL_MAX_ATTEMPTS)
    assert run_once(event) is None
    event.refresh_from_db()
    assert event.broker_outcome == "failed" and "no answer after 3 attempts" in event.broker_detail["error"]
    assert alpaca.log == []


# --- the sweep and the gauge -----------------------------------------------------------------


def test_the_sweep_requeues_only_rows_left_pending_too_long(operator_actor, queued, settings):
    service.halt("global", reason="a", actor=operator_actor, cancel_orders=True)  # fresh
    long_ago = timezone.now() - timedelta(seconds=settings.BROKER_CANCEL_STALE_SECONDS + 1)
    old = BrokerCancellation.objects.create(actor="otto", source="manual", reason="b", created_at=long_ago)
    BrokerCancellation.objects.create(
        actor="otto", source="manual", reason="c", created_at=long_ago, broker_outcome="succeeded"
    )
    queued.clear()
    assert broker.requeue_stale() == 1
    assert queued == [("cancellation", old.pk)]
    # A row with a recent attempt is in retry backoff, not lost: left alone.
    BrokerCancellation.objects.filter(pk=old.pk).update(broker_attempted_at=timezone.now())
    assert broker.requeue_stale() == 0


def test_the_sweep_is_scheduled_with_an_expiry():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["sweep-broker-cancellations"]
    assert entry["task"] == "ops.trading.tasks.sweep_broker_cancellations"
    assert entry["options"]["expires"] <= entry["schedule"]


def test_pending_cancellations_are_a_gauge_on_metrics(alpaca, operator_actor, queued):
    assert value(scrape(), "investiq_broker_cancellations_pending") == 0
    event = halt_with_cancel(operator_actor).event
    service.halt("global", reason="again", actor=operator_actor, cancel_orders=True)  # a cancellation row
    assert value(scrape(), "investiq_broker_cancellations_pending") == 2
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_json([], status=207)
    run_once(event)
    assert value(scrape(), "investiq_broker_cancellations_pending") == 1


def test_a_failed_cancel_shows_on_metrics_for_a_day(alpaca, operator_actor, queued):
    from datetime import timedelta

    assert value(scrape(), "investiq_broker_cancellations_failed_recent") == 0
    event = halt_with_cancel(operator_actor).event
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_json(
        {"message": "forbidden"}, status=403
    )
    run_once(event)
    assert value(scrape(), "investiq_broker_cancellations_failed_recent") == 1
    assert broker.recently_failed_count(timezone.now() + timedelta(hours=25)) == 0


# --- what people are told ----------------------------------------------------------------------


def test_orders_can_be_cancelled_when_trading_is_already_halted(alpaca, operator_actor, inline_worker):
    service.halt(
        "global", reason="tripped by the probes", actor=operator_actor, source="rule:broker_unreachable"
    )
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_json(
        [{"id": "late-1", "status": 200}], status=207
    )
    result = service.halt(
        "global", reason="broker back, clear the book", actor=operator_actor, cancel_orders=True
    )
    assert not result.changed and TradingEvent.objects.count() == 1  # no misleading second halt
    cancellation = BrokerCancellation.objects.get()
    assert result.cancellation == cancellation
    assert (cancellation.actor, cancellation.broker_outcome) == ("otto", "succeeded")
    assert cancellation.broker_detail["cancelled"] == ["late-1"]


def test_the_command_reports_the_outcome_once_known(alpaca, operator_actor, inline_worker, capsys):
    service.halt("global", reason="x", actor=operator_actor)
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_json([], status=207)
    call_command("trading", "halt", "--reason", "clear", "--actor", "otto", "--cancel-orders")
    assert "cancel all open orders at the broker: succeeded" in capsys.readouterr().out


def test_the_command_says_pending_when_no_outcome_is_known_yet(operator_actor, queued, settings, capsys):
    settings.BROKER_CANCEL_WAIT_SECONDS = 0  # no worker here: nothing will answer
    call_command("trading", "halt", "--reason", "runaway", "--actor", "otto", "--cancel-orders")
    out = capsys.readouterr().out
    assert "ACTIVE -> HALTED" in out
    assert "cancel all open orders at the broker: pending" in out and "will be retried" in out


def admin_halt(user) -> list[str]:
    client = Client()
    client.force_login(user)
    response = client.post(
        "/admin/ops/tradingstate/halt/",
        {"scope": "global", "state": "HALTED", "reason": "clear the book", "cancel_orders": "on"},
        follow=True,
    )
    return [str(m) for m in response.context["messages"]]


def test_the_admin_shows_a_failed_cancel_made_on_an_already_halted_scope(
    alpaca, operator_actor, inline_worker
):
    service.halt(
        "global",
        reason="tripped",
        actor=service.Actor.system("probes", service.HALT),
        source="rule:broker_unreachable",
    )
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_data("forbidden", status=403)
    shown = admin_halt(operator_actor.user)
    assert any("already HALTED" in m for m in shown), shown
    assert any("Cancel all open orders at the broker: failed" in m and "HTTP 403" in m for m in shown), shown


def test_the_admin_says_pending_when_no_outcome_is_known_yet(operator_actor, queued, settings):
    settings.BROKER_CANCEL_WAIT_SECONDS = 0
    shown = admin_halt(operator_actor.user)
    assert any("ACTIVE → HALTED" in m for m in shown), shown
    assert any("pending" in m and "will be retried" in m for m in shown), shown


# --- the real chain: a Celery worker on Redis ------------------------------------------------


@pytest.fixture
def worker_queue(transactional_db, postgres, redis_url, tmp_path, alpaca, monkeypatch):
    """A real `celery worker` on Redis, against this run's database and this Alpaca."""
    queue = f"broker-{uuid.uuid4().hex[:8]}"
    # Messages sent from this process go to the test's own queue (retries follow them).
    monkeypatch.setattr(
        cancel_open_orders_task, "delay", lambda *args: cancel_open_orders_task.apply_async(args, queue=queue)
    )
    env = {
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "broker-test",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "ALPACA_BASE_URL": alpaca.url_for("/"),
        "ALPACA_KEY_ID": "key-id",
        "ALPACA_SECRET_KEY": "secret",
        "ALPACA_READ_TIMEOUT": "2",
        "BROKER_CANCEL_RETRY_BASE_SECONDS": "0.2",
    }
    worker = start_process(celery_worker(queue), env, tmp_path / "worker.log")
    yield tmp_path / "worker.log"
    stop_process(worker)


def test_a_real_worker_retries_a_5xx_and_the_command_reports_the_outcome(
    worker_queue, alpaca, settings, capsys
):
    make_user("otto", "ops_operator")
    settings.BROKER_CANCEL_WAIT_SECONDS = 90  # wait for the outcome; it is the outcome we check
    seen: list[str] = []
    alpaca.expect_ordered_request("/v2/orders", method="DELETE").respond_with_handler(
        respond_after_checking(seen, Response("upstream down", status=502))
    )
    alpaca.expect_ordered_request("/v2/orders", method="DELETE").respond_with_handler(
        respond_after_checking(seen, Response(ORDERS_JSON, status=207, content_type="application/json"))
    )
    call_command("trading", "halt", "--reason", "runaway", "--actor", "otto", "--cancel-orders")
    out = capsys.readouterr().out
    event = TradingEvent.objects.get()
    assert (event.broker_outcome, event.broker_attempts) == ("succeeded", 2), worker_queue.read_text()[-3000:]
    assert seen == [State.HALTED, State.HALTED]
    assert "cancel all open orders at the broker: succeeded, 2 order(s) cancelled" in out
    assert value(scrape(), "investiq_broker_cancellations_pending") == 0


def test_a_failed_cancel_stays_on_metrics_until_a_later_cancel_succeeds(alpaca, operator_actor, queued):
    from datetime import timedelta

    event = halt_with_cancel(operator_actor).event
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_json(
        {"message": "forbidden"}, status=403
    )
    run_once(event)
    assert value(scrape(), "investiq_broker_cancellations_failed_unresolved") == 1
    # A day later nobody has acted: still there (the 24 h count has let it go).
    type(event).objects.filter(pk=event.pk).update(broker_attempted_at=timezone.now() - timedelta(days=2))
    assert value(scrape(), "investiq_broker_cancellations_failed_recent") == 0
    assert value(scrape(), "investiq_broker_cancellations_failed_unresolved") == 1
    # Someone acts: cancel-all again, and this time Alpaca confirms.
    alpaca.clear()
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_json([], status=207)
    row = service.halt("global", reason="cancel again", actor=operator_actor, cancel_orders=True)
    run_once(row.cancellation)
    assert value(scrape(), "investiq_broker_cancellations_failed_unresolved") == 0
