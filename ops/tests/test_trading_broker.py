"""Cancel-on-halt against a local HTTP server playing Alpaca."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from werkzeug import Response

from ops.tests.conftest import make_user
from ops.trading import service
from ops.trading.errors import InvalidTransition
from ops.trading.models import State, TradingEvent, TradingState

ORDERS = [{"id": "ord-a", "status": 200}, {"id": "ord-b", "status": 200}]


@pytest.fixture
def alpaca(httpserver, settings):
    settings.ALPACA_BASE_URL = httpserver.url_for("/")
    settings.ALPACA_KEY_ID = "key-id"
    settings.ALPACA_SECRET_KEY = "secret"
    settings.ALPACA_CONNECT_TIMEOUT = 1.0
    settings.ALPACA_READ_TIMEOUT = 0.5
    return httpserver


@pytest.fixture
def operator_actor(transactional_db):
    return service.Actor.of(make_user("otto", "ops_operator"))


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


def halt_with_cancel(actor: service.Actor) -> tuple[service.TransitionResult, float]:
    started = time.monotonic()
    result = service.halt("global", reason="runaway strategy", actor=actor, cancel_orders=True)
    return result, time.monotonic() - started


def test_a_successful_cancel_is_recorded_on_the_event(alpaca, operator_actor):
    seen: list[str] = []
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_handler(
        respond_after_checking(
            seen,
            Response(
                '[{"id": "ord-a", "status": 200}, {"id": "ord-b", "status": 200}]',
                status=207,
                content_type="application/json",
            ),
        )
    )
    result, _ = halt_with_cancel(operator_actor)
    assert seen == [State.HALTED]
    event = TradingEvent.objects.get()
    assert event == result.event and event.broker_outcome == "succeeded"
    assert event.broker_detail["cancelled"] == ["ord-a", "ord-b"]


@pytest.mark.parametrize(
    "body,status,expected",
    [
        ("internal error", 500, "HTTP 500"),
        ("<html>not json</html>", 200, "not JSON"),
        ('{"unexpected": "object"}', 207, "malformed answer"),
        ('{"message": "forbidden"}', 403, "credentials refused"),
    ],
    ids=["500", "malformed", "wrong-shape", "unauthorized"],
)
def test_a_failed_cancel_is_recorded_and_the_halt_stands(alpaca, operator_actor, body, status, expected):
    seen: list[str] = []
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_handler(
        respond_after_checking(seen, Response(body, status=status))
    )
    _result, _ = halt_with_cancel(operator_actor)
    assert seen == [State.HALTED]
    assert TradingState.objects.get(scope="global").state == State.HALTED
    event = TradingEvent.objects.get()
    assert event.broker_outcome == "failed"
    assert expected in event.broker_detail["error"]


def test_a_hanging_broker_does_not_hold_the_halt_past_the_timeout(alpaca, operator_actor, settings):
    release = threading.Event()
    seen: list[str] = []

    def hang(request):
        seen.append(state_seen_by_another_connection())
        release.wait(10)
        return Response("[]", status=207)

    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_handler(hang)
    try:
        _result, elapsed = halt_with_cancel(operator_actor)
    finally:
        release.set()
    assert seen == [State.HALTED]
    assert elapsed < settings.ALPACA_READ_TIMEOUT + settings.ALPACA_CONNECT_TIMEOUT + 2
    event = TradingEvent.objects.get()
    assert event.broker_outcome == "failed"
    assert "no answer within 0.5s" in event.broker_detail["error"]


def test_an_unreachable_broker_is_recorded(settings, operator_actor):
    settings.ALPACA_BASE_URL = "http://127.0.0.1:1"
    settings.ALPACA_KEY_ID = settings.ALPACA_SECRET_KEY = "x"
    halt_with_cancel(operator_actor)
    event = TradingEvent.objects.get()
    assert event.broker_outcome == "failed" and "connection failed" in event.broker_detail["error"]


def test_an_unconfigured_broker_is_recorded_not_crashed(settings, operator_actor):
    settings.ALPACA_KEY_ID = ""
    halt_with_cancel(operator_actor)
    assert "not configured" in TradingEvent.objects.get().broker_detail["error"]


def test_cancelling_is_only_offered_for_global_halts(operator_actor):
    with pytest.raises(InvalidTransition, match="account-wide"):
        service.halt("symbol:AAPL", reason="x", actor=operator_actor, cancel_orders=True)


def test_a_halt_without_cancel_makes_no_broker_call(alpaca, operator_actor):
    service.halt("global", reason="x", actor=operator_actor)
    assert alpaca.log == []
    assert TradingEvent.objects.get().broker_outcome == "not_requested"


def test_orders_can_be_cancelled_when_trading_is_already_halted(alpaca, operator_actor):
    from ops.trading.models import BrokerCancellation

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


def test_the_command_cancels_orders_on_an_already_halted_scope(alpaca, operator_actor, capsys):
    from django.core.management import call_command

    service.halt("global", reason="x", actor=operator_actor)
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_json([], status=207)
    call_command("trading", "halt", "--reason", "clear", "--actor", "otto", "--cancel-orders")
    assert "cancel all open orders: succeeded" in capsys.readouterr().out


def test_the_admin_shows_a_cancel_made_on_an_already_halted_scope(alpaca, operator_actor):
    from django.test import Client

    service.halt(
        "global",
        reason="tripped",
        actor=service.Actor.system("probes", service.HALT),
        source="rule:broker_unreachable",
    )
    alpaca.expect_request("/v2/orders", method="DELETE").respond_with_data("broken", status=500)
    client = Client()
    client.force_login(operator_actor.user)
    response = client.post(
        "/admin/ops/tradingstate/halt/",
        {"scope": "global", "state": "HALTED", "reason": "clear the book", "cancel_orders": "on"},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert any("Cancel all open orders: failed" in m and "HTTP 500" in m for m in shown), shown
