"""The pre-trade gate on POST /api/v1/trades, and GET /api/v1/trading/status."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest

from ops.records.models import Position, Trade
from ops.tests.conftest import trade_payload, unreadable_trading_state
from ops.trading import service
from ops.trading.models import State

TRADES = "/api/v1/trades"
STATUS = "/api/v1/trading/status"
SYSTEM = service.Actor.system("tests", service.HALT)


def halt(scope: str, state: str = State.HALTED, reason: str = "test") -> None:
    service.halt(scope, reason=reason, actor=SYSTEM, to_state=state)


class Orders:
    """Posts numbered orders through the API and returns status codes."""

    def __init__(self, api) -> None:
        self.api = api
        self.n = 0

    def __call__(self, side: str, quantity: str, symbol: str = "AAPL", strategy: str = "momentum"):
        self.n += 1
        return self.api.post_json(
            TRADES,
            trade_payload(
                client_order_id=f"o-{self.n}", side=side, quantity=quantity, symbol=symbol, strategy=strategy
            ),
        )


@pytest.fixture
def order(api) -> Orders:
    return Orders(api)


def position(symbol: str = "AAPL", strategy: str = "momentum") -> Decimal:
    return Position.objects.get(symbol=symbol, strategy=strategy).quantity


def test_trades_pass_while_active_and_move_the_position(order):
    assert order("buy", "10").status_code == 201
    assert order("sell", "3").status_code == 201
    assert position() == Decimal(7)


def test_a_global_halt_refuses_with_423_and_records_nothing(order):
    halt("global", reason="broker outage")
    response = order("buy", "1")
    assert response.status_code == 423
    body = response.json()
    assert body["error"] == "trading_halted"
    assert (body["state"], body["scope"], body["reason"]) == ("HALTED", "global", "broker outage")
    assert body["since"]
    assert not Trade.objects.exists()


def test_reducing_accepts_only_trades_that_shrink_a_long_position(order):
    assert order("buy", "10").status_code == 201
    halt("symbol:AAPL", State.REDUCING)
    assert order("sell", "4").status_code == 201
    refused_buy = order("buy", "1")
    assert refused_buy.status_code == 423 and refused_buy.json()["error"] == "trading_reducing"
    assert "position from 6 to 7." in refused_buy.json()["detail"]
    flip = order("sell", "7")  # would flip 6 long to 1 short
    assert flip.status_code == 423
    assert "position from 6 to -1." in flip.json()["detail"]
    assert position() == Decimal(6)
    assert order("sell", "6").status_code == 201  # flat is allowed
    assert order("sell", "1").status_code == 423  # and from flat, nothing
    assert position() == 0


def test_a_refusal_writes_positions_as_plain_numbers(order):
    assert order("buy", "10").status_code == 201
    halt("symbol:AAPL", State.REDUCING)
    assert "position from 10 to 20." in order("buy", "10").json()["detail"]  # not 1E+1


def test_reducing_is_symmetric_for_short_positions(order):
    assert order("sell", "10").status_code == 201
    halt("symbol:AAPL", State.REDUCING)
    assert order("buy", "4").status_code == 201
    assert order("sell", "1").status_code == 423
    assert order("buy", "7").status_code == 423
    assert position() == Decimal(-6)


def test_reducing_counts_the_position_per_strategy(order):
    assert order("buy", "10", strategy="momentum").status_code == 201
    halt("global", State.REDUCING)
    # The pairs strategy is flat in AAPL, so even a sell would open a position there.
    assert order("sell", "1", strategy="pairs").status_code == 423
    assert order("sell", "1", strategy="momentum").status_code == 201


def test_a_reducing_symbol_leaves_other_symbols_and_strategies_alone(order):
    halt("symbol:AAPL", State.REDUCING)
    assert order("buy", "1", symbol="MSFT").status_code == 201
    assert order("buy", "1", symbol="AAPL", strategy="pairs").status_code == 423


def test_a_strategy_halt_blocks_only_that_strategy(order):
    halt("strategy:momentum")
    blocked = order("buy", "1", strategy="momentum")
    assert blocked.status_code == 423 and blocked.json()["scope"] == "strategy:momentum"
    assert order("buy", "1", strategy="pairs").status_code == 201
    assert order("buy", "1", symbol="MSFT", strategy="pairs").status_code == 201


def test_a_symbol_reducing_with_global_active_gives_reducing(api):
    halt("symbol:AAPL", State.REDUCING, reason="data gap")
    body = api.get_json(STATUS + "?symbol=AAPL&strategy=momentum").json()
    assert (body["state"], body["scope"], body["reason"]) == ("REDUCING", "symbol:AAPL", "data gap")


def test_global_halted_beats_everything(api, order):
    halt("symbol:AAPL", State.REDUCING)
    halt("strategy:momentum", State.REDUCING)
    halt("global")
    body = api.get_json(STATUS + "?symbol=AAPL&strategy=momentum").json()
    assert (body["state"], body["scope"], body["allowed_sides"]) == ("HALTED", "global", [])
    assert order("buy", "1", symbol="MSFT", strategy="pairs").json()["error"] == "trading_halted"


def test_the_most_restrictive_scope_decides(api):
    halt("global", State.REDUCING)
    halt("symbol:TSLA")
    assert api.get_json(STATUS + "?symbol=TSLA").json()["scope"] == "symbol:TSLA"
    assert api.get_json(STATUS + "?symbol=AAPL").json()["scope"] == "global"


def test_status_reports_allowed_sides(api, order):
    assert api.get_json(STATUS).json() == {
        "state": "ACTIVE",
        "scope": "global",
        "reason": "",
        "since": None,
        "allowed_sides": ["buy", "sell"],
    }
    order("buy", "5")
    halt("global", State.REDUCING)
    assert api.get_json(STATUS + "?symbol=AAPL&strategy=momentum").json()["allowed_sides"] == ["sell"]
    assert api.get_json(STATUS + "?symbol=MSFT&strategy=momentum").json()["allowed_sides"] == []


@pytest.mark.parametrize("query", ["?symbol=aapl", "?strategy=a%20b", "?symbol=TOOLONGSYMBOL", "?foo=1"])
def test_status_rejects_bad_parameters(api, query):
    response = api.get_json(STATUS + query)
    assert response.status_code == 400
    assert response.json()["error"] == "validation_failed"


def test_status_rejects_repeated_parameters(api):
    response = api.get_json(STATUS + "?symbol=AAPL&symbol=")
    assert response.status_code == 400
    assert response.json()["fields"] == {"symbol": ["Give this parameter once."]}


def test_status_needs_a_token(api):
    assert api.get_json(STATUS, token=None).status_code == 401


def test_a_retry_of_a_trade_recorded_before_the_halt_still_answers_200(api, order):
    first = order("buy", "1")
    halt("global")
    retry = api.post_json(
        TRADES,
        trade_payload(client_order_id="o-1", side="buy", quantity="1", symbol="AAPL", strategy="momentum"),
    )
    assert retry.status_code == 200 and retry.json() == first.json()


def test_the_gate_fails_closed_when_the_state_cannot_be_read(order):
    order("buy", "1")
    with unreadable_trading_state():
        response = order("buy", "1")
    assert response.status_code == 503
    assert response.json()["error"] == "trading_state_unavailable"
    assert Trade.objects.count() == 1
    assert position() == 1


def test_a_first_order_that_fails_closed_leaves_no_position_behind(order):
    with unreadable_trading_state():
        assert order("buy", "1", symbol="NEW").status_code == 503
    assert not Position.objects.filter(symbol="NEW").exists()


def test_a_refused_first_order_leaves_no_position_behind(order):
    halt("symbol:NEW", State.REDUCING)
    assert order("sell", "1", symbol="NEW").status_code == 423
    assert not Position.objects.filter(symbol="NEW").exists()
    # A conflicting reuse of an id is refused without a position row too.
    assert order("buy", "1").status_code == 201
    conflicting = TRADES, trade_payload(client_order_id="o-2", side="buy", quantity="1", symbol="OTHER")
    assert order.api.post_json(*conflicting).status_code == 409
    assert not Position.objects.filter(symbol="OTHER").exists()


def test_a_refusal_leaves_the_callers_transaction_usable(db):
    """The admin and seed_demo call the gate inside their own transaction."""
    from django.db import transaction

    from ops.records.intake import TradeOrder
    from ops.trading.gate import TradeDenied, submit_trade

    halt("global")
    with transaction.atomic():
        with pytest.raises(TradeDenied):
            submit_trade(TradeOrder("in-tx", "AAPL", "buy", Decimal(1), Decimal(1)))
        assert Trade.objects.count() == 0  # still usable: no "current transaction is aborted"


def test_the_gate_answers_503_when_the_database_is_unreachable(database_down_with_token):
    from django.test import Client

    response = Client().post(
        TRADES,
        trade_payload(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {database_down_with_token}"},
    )
    assert response.status_code == 503
    assert response.json()["error"] == "trading_state_unavailable"


def test_a_database_failure_in_the_middle_of_a_trade_writes_nothing(api, order):
    """The connection dies after the trade row is inserted and before its position moves:
    the trade, the position and the counters roll back together (nothing half-written)."""
    from django.db import connection

    from ops.records.models import Position

    order("buy", "1")
    counted = counted_trades()
    assert counted == Trade.objects.count() == 1  # the first trade is counted

    with dying_at_the_position_update(connection):
        response = api.post_json(TRADES, trade_payload(client_order_id="o-2", side="buy", quantity="1"))
    assert response.status_code == 503
    assert response.json()["error"] == "trading_state_unavailable"
    assert not Trade.objects.filter(client_order_id="o-2").exists()
    assert Position.objects.get(strategy="momentum", symbol="AAPL").quantity == 1
    assert counted_trades() == counted


@contextlib.contextmanager
def dying_at_the_position_update(connection):
    """The server goes away when the trade's position is about to move."""
    from django.db import OperationalError

    if connection.vendor == "postgresql":
        # The gate is one statement there: a trigger fails it from inside, with the
        # error a server shutdown gives (57P01), after the trade row went in.
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION test_die() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION USING ERRCODE = 'admin_shutdown'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_die BEFORE UPDATE ON ops_position "
                "FOR EACH ROW EXECUTE FUNCTION test_die()"
            )
        yield  # the test's transaction drops both
        return

    def die(execute, sql, params, many, context):
        if sql.startswith('UPDATE "ops_position"'):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(die):
        yield


def counted_trades() -> int:
    """investiq_trades_total as /metrics exports it: the counter rows the insert triggers
    write under the name "trades" (migration 0005), summed over sides and shards."""
    from ops.monitoring.models import MetricCounter

    return sum(MetricCounter.objects.totals("trades").values())


def test_the_gate_path_reads_each_thing_once(order):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    order("buy", "1")  # position row exists, token touched
    with CaptureQueriesContext(connection) as captured:
        assert order("buy", "1").status_code == 201
    sql = [q["sql"] for q in captured.captured_queries]
    assert sum('FROM "ops_apiclient"' in q for q in sql) == 1
    assert not any("COUNT(" in q for q in sql)
    if connection.vendor == "postgresql":
        # One call does the lock, the state read and the insert (test_trading_gate_postgres.py).
        assert sum("ops_submit_trade(" in q for q in sql) == 1
        assert not any('"ops_tradingstate"' in q or '"ops_position"' in q for q in sql)
        return
    assert sum('FROM "ops_tradingstate"' in q for q in sql) == 1
    # The position row is read once (SQLite has no FOR UPDATE: its writer lock covers
    # the whole transaction).
    assert sum('FROM "ops_position"' in q for q in sql) == 1


def test_an_api_client_deleted_after_its_token_check_fails_closed_not_500(transactional_db):
    """The form has checked every constraint, so an IntegrityError can only come from a row
    changed meanwhile (here the client's, between token check and insert): refused as
    unavailable with nothing written, and the retry is answered by the token check.
    Autocommit, as under gunicorn: SQLite checks foreign keys at commit."""
    from ops.api.models import ApiClient
    from ops.records.intake import TradeOrder
    from ops.trading import gate

    client, _ = ApiClient.issue("gone")
    ApiClient.objects.filter(pk=client.pk).delete()
    order = TradeOrder("orphan-1", "AAPL", "buy", Decimal(1), Decimal(1), "momentum")
    with pytest.raises(gate.TradingStateUnavailable):
        gate.submit_trade(order, api_client_id=client.pk)
    assert not Trade.objects.exists() and not Position.objects.exists()
