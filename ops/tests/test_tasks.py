from __future__ import annotations

import time

import pytest

from ops.records.models import Trade
from ops.tasks import record_trade_task
from ops.tests.conftest import trade_payload


def test_the_task_body_records_a_trade(db):
    trade_id = record_trade_task.run(trade_payload(client_order_id="fill-1"))
    assert Trade.objects.get(pk=trade_id).client_order_id == "fill-1"


def test_the_task_is_refused_by_the_gate_while_halted_logged_and_counted(db, caplog):
    from prometheus_client import REGISTRY

    from ops.trading import service

    def denied() -> float:
        return REGISTRY.get_sample_value("investiq_orders_denied_total", {"reason": "trading_halted"}) or 0

    service.halt("global", reason="runaway", actor=service.Actor.system("tests", service.HALT))
    before = denied()
    assert record_trade_task.run(trade_payload(client_order_id="fill-2")) is None  # no exception: no retry
    assert not Trade.objects.exists()
    assert denied() == before + 1
    assert any("fill-2" in r.message and "trading_halted" in r.message for r in caplog.records)


def test_the_task_under_reducing_records_only_what_shrinks_the_position(db):
    from ops.trading import service

    record_trade_task.run(trade_payload(client_order_id="open", side="buy", quantity="10"))
    service.halt(
        "strategy:momentum",
        reason="drawdown",
        actor=service.Actor.system("t", service.HALT),
        to_state="REDUCING",
    )
    assert record_trade_task.run(trade_payload(client_order_id="more", side="buy", quantity="1")) is None
    assert record_trade_task.run(trade_payload(client_order_id="less", side="sell", quantity="4")) is not None
    assert set(Trade.objects.values_list("client_order_id", flat=True)) == {"open", "less"}


def test_the_task_rejects_invalid_payloads_with_a_domain_error_not_the_http_one(db):
    from ops.api.errors import ApiError
    from ops.records.intake import InvalidOrder

    with pytest.raises(InvalidOrder) as raised:
        record_trade_task.run(trade_payload(quantity="-1"))
    assert not isinstance(raised.value, ApiError)
    assert set(raised.value.fields) == {"quantity"}
    assert not Trade.objects.exists()


def test_a_real_worker_on_redis_runs_the_task_end_to_end(celery_worker_process):
    record_trade_task.apply_async(
        args=[trade_payload(client_order_id="async-1")], queue=celery_worker_process
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not Trade.objects.filter(client_order_id="async-1").exists():
        time.sleep(0.2)
    assert Trade.objects.filter(client_order_id="async-1").exists(), "the worker did not record the trade"
    # The worker's trade is counted on /metrics like any other (database counters).
    from ops.tests.test_metrics import scrape, value

    assert value(scrape(), "investiq_trades_total", side="buy") == 1


def test_an_unreadable_state_is_retried_not_dropped(db):
    from celery.exceptions import Retry

    from ops.tests.conftest import unreadable_trading_state

    with unreadable_trading_state():
        # Eager apply runs the task's own retry policy: it asks to be retried, it does not return.
        with pytest.raises(Retry):
            record_trade_task.apply(args=[trade_payload(client_order_id="later-1")], throw=True)
        assert not Trade.objects.exists()
    assert record_trade_task.apply(args=[trade_payload(client_order_id="later-1")]).get() is not None


def test_a_halt_with_cancel_orders_stands_when_the_broker_is_down(
    db, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    from investiq.celery import app
    from ops.trading import service
    from ops.trading.models import State, TradingEvent, TradingState

    # A real broker URL where nothing listens, and a fresh connection pool for it; the
    # app's own URL and pool come back after the test.
    monkeypatch.setitem(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)  # cached on top of the pool
    with django_capture_on_commit_callbacks(execute=True):
        result = service.halt(
            "global",
            reason="broker outage",
            actor=service.Actor.system("tests", service.HALT),
            cancel_orders=True,
        )
    assert result.changed and TradingState.objects.get(scope="global").state == State.HALTED
    assert TradingEvent.objects.get().broker_outcome == "pending"  # the sweep will queue it again
    assert "not queued" in caplog.text
