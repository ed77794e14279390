"""The gate on Postgres, where it is one function call (ops_submit_trade, migration 0012):
its statement count, its position lock, and its agreement with gate.check()."""

from __future__ import annotations

import threading
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from ops.api.models import ApiClient
from ops.records.intake import TradeOrder
from ops.records.models import Position, Trade
from ops.tests.conftest import ApiTestClient, trade_payload, wait_for_session
from ops.tests.test_trading_concurrency import in_thread, slow_trade_inserts
from ops.trading import service
from ops.trading.gate import TradeDenied, check, effective_state, position_of, submit_trade
from ops.trading.models import State, TradingState

TRADES = "/api/v1/trades"
SYSTEM = service.Actor.system("tests", service.HALT)


@pytest.fixture
def engine(transactional_db, postgres) -> ApiTestClient:
    """An API client whose requests run in autocommit, as under gunicorn (no test transaction)."""
    _, token = ApiClient.issue("engine")
    engine = ApiTestClient(token=token)
    # The position row exists and the token's last_used_at was written (once a minute).
    assert engine.post_json(TRADES, trade_payload(client_order_id="warm-up")).status_code == 201
    return engine


def statements(engine: ApiTestClient, payload: dict, status: int) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = engine.post_json(TRADES, payload)
    assert response.status_code == status, response.content
    return [query["sql"] for query in captured.captured_queries]


def test_an_accepted_trade_costs_one_statement(engine):
    sql = statements(engine, trade_payload(client_order_id="t-1"), 201)
    # The token check and the gate (lock, state, insert and position) in one autocommit
    # statement, so no BEGIN, SAVEPOINT or COMMIT either. (Issue 12: 11 before, <= 6
    # wanted; issue 20: 2 before, the token's own SELECT being the other.)
    assert len(sql) == 1, sql
    assert 'FROM "ops_apiclient" AS sender LEFT JOIN LATERAL ops_submit_trade(' in sql[0]
    assert Trade.objects.filter(client_order_id="t-1").get().api_client_id == ApiClient.objects.get().pk


def test_an_identical_retry_costs_one_statement_and_returns_the_original(engine):
    first = engine.post_json(TRADES, trade_payload(client_order_id="t-1"))
    sql = statements(engine, trade_payload(client_order_id="t-1"), 200)
    assert len(sql) == 1, sql
    assert engine.post_json(TRADES, trade_payload(client_order_id="t-1")).json() == first.json()


def test_a_conflicting_retry_costs_one_statement(engine):
    engine.post_json(TRADES, trade_payload(client_order_id="t-1"))
    sql = statements(engine, trade_payload(client_order_id="t-1", quantity="11"), 409)
    assert len(sql) == 1, sql
    assert Trade.objects.filter(client_order_id="t-1").get().quantity == 10


@pytest.mark.parametrize("token", ["revoked", "unknown", "without the trades scope"])
def test_a_token_that_does_not_pass_runs_no_gate_and_gets_its_own_answer(engine, token):
    """The gate's function runs only for a client the statement found: a valid order
    with a bad token leaves no trade and no position behind (not even for the new
    symbol's position), and gets the answer the token check gives everywhere."""
    if token == "revoked":
        ApiClient.objects.get().revoke()
        client, status = engine, 401
    elif token == "unknown":
        client, status = ApiTestClient(token="iq_not-a-real-token"), 401
    else:
        client, status = ApiTestClient(token=ApiClient.issue("reader", "analyses,status")[1]), 403
    sql = statements(client, trade_payload(client_order_id="t-bad", symbol="NEWCO"), status)
    assert "ops_submit_trade(" in sql[0] and not any("ops_submit_trade(" in query for query in sql[1:])
    assert not Trade.objects.filter(client_order_id="t-bad").exists()
    assert not Position.objects.filter(symbol="NEWCO").exists()


def test_a_refused_order_still_counts_as_the_token_s_use(engine):
    """last_used_at (written at most once a minute) tells operators the engine is
    calling; an engine refused throughout a halt is calling too."""
    ApiClient.objects.update(last_used_at=None)
    service.halt("global", reason="tests", actor=SYSTEM)
    assert engine.post_json(TRADES, trade_payload(client_order_id="t-halted")).status_code == 423
    assert ApiClient.objects.get().last_used_at is not None


def test_a_token_that_passes_after_the_statement_found_none_is_still_gated_once(engine, monkeypatch):
    """The race: the statement finds no client, then the usual check passes (a scope
    granted in between). The order goes through the plain gate, recorded once."""
    from ops.api import views

    monkeypatch.setattr(views, "submit_trade_from", lambda order, sender: None)
    sql = statements(engine, trade_payload(client_order_id="t-late"), 201)
    assert [query for query in sql if "ops_submit_trade(" in query] == [sql[-1]]
    assert Trade.objects.get(client_order_id="t-late").api_client_id == ApiClient.objects.get().pk


def test_a_failed_last_used_write_does_not_change_a_committed_answer(engine, monkeypatch, caplog):
    """The gate's statement has committed before last_used_at is written: the order is
    answered as the gate decided, and the failure is only logged."""
    from django.db import OperationalError

    from ops.api.models import ApiClientQuerySet

    def fail(*args, **kwargs):
        raise OperationalError("the connection was lost")

    monkeypatch.setattr(ApiClientQuerySet, "touch", fail)
    assert engine.post_json(TRADES, trade_payload(client_order_id="t-untouched")).status_code == 201
    assert Trade.objects.filter(client_order_id="t-untouched").exists()
    assert "could not record the use of API client" in caplog.text


def test_a_found_client_without_an_answer_from_the_gate_fails_closed_and_is_not_retried(engine, monkeypatch):
    """Should the function ever answer no row for a client found, the order is 503 (not
    confirmed), never handed to the plain gate a second time."""
    from ops.trading import gate

    monkeypatch.setattr(gate, "SUBMIT_CALL", f"(SELECT * FROM {gate.SUBMIT_CALL} WHERE false)")
    sql = statements(engine, trade_payload(client_order_id="t-silent"), 503)
    assert len([query for query in sql if "ops_submit_trade(" in query]) == 1, sql
    assert not Trade.objects.filter(client_order_id="t-silent").exists()


def other_session() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )


def test_the_gate_waits_for_the_position_lock_and_then_sees_a_halt_made_meanwhile(transactional_db, postgres):
    """FOR UPDATE on the position, and the state read after the lock is granted: remove
    either and the waiting order is accepted after the halt returned."""
    submit_trade(TradeOrder("seed", "AAPL", "buy", Decimal(10), Decimal(1), "momentum"))
    outcome: dict[str, str] = {}

    @in_thread
    def sell() -> None:
        try:
            submit_trade(TradeOrder("waits", "AAPL", "sell", Decimal(1), Decimal(1), "momentum"))
            outcome["sell"] = "created"
        except TradeDenied as exc:
            outcome["sell"] = exc.code

    with other_session() as holder:  # another trade on the same position, mid-flight
        holder.execute("SELECT 1 FROM ops_position WHERE symbol = 'AAPL' FOR UPDATE")
        thread = threading.Thread(target=sell)
        thread.start()
        wait_for_session("ops_submit_trade(", "Lock")
        service.halt("global", reason="while the sell waits", actor=SYSTEM)
        holder.rollback()
    thread.join(timeout=30)
    assert outcome == {"sell": "trading_halted"}
    assert list(Trade.objects.values_list("client_order_id", flat=True)) == ["seed"]
    assert Position.objects.get(symbol="AAPL").quantity == 10


def test_a_halt_does_not_wait_for_a_gate_in_flight(transactional_db, postgres):
    """The gate reads the state without a share lock (share locks let trading traffic
    starve a halt): a halt goes through while a gate call that has read the state is
    still running, and that call, past its state read, may still commit."""
    TradingState.objects.get_or_create(scope="global")  # a row a share lock would hold
    outcome: dict[str, bool] = {}

    @in_thread
    def buy() -> None:
        outcome["created"] = submit_trade(TradeOrder("in-flight", "AAPL", "buy", Decimal(1), Decimal(1)))[1]

    with slow_trade_inserts(2.0, "NEW.client_order_id = 'in-flight'"):
        thread = threading.Thread(target=buy)
        thread.start()
        wait_for_session("ops_submit_trade(", "Timeout")  # in its insert, past the state read
        with connection.cursor() as cursor:
            # A halt that had to wait for the gate would fail here instead of waiting.
            cursor.execute("SET lock_timeout = '1s'")
            try:
                assert service.halt("global", reason="x", actor=SYSTEM).changed
            finally:
                cursor.execute("RESET lock_timeout")
        thread.join(timeout=30)
    assert outcome == {"created": True}


# Positions and states the rule is checked over: long, short and flat positions, every
# pair of states at the strategy and symbol scopes (precedence and ties), under an
# ACTIVE and then a REDUCING global scope.
POSITIONS = {"L": Decimal(10), "LL": Decimal(1), "F": Decimal(0), "SS": Decimal(-1), "S": Decimal(-10)}
SCOPE_STATES = [(a, b) for a in State.values for b in State.values]
ORDERS = [(side, Decimal(quantity)) for side in ("buy", "sell") for quantity in ("1", "10", "11", "0.5")]


class Undo(Exception):
    pass


def test_the_one_statement_gate_decides_as_check_does(db, postgres):
    """ops_submit_trade() writes gate.check()'s rule in SQL: both decide every case alike
    (and a refusal's wording, from the state and position the SQL judged, matches)."""
    cases = []
    for index, (strategy_state, symbol_state) in enumerate(SCOPE_STATES):
        strategy = f"s{index}"
        if strategy_state != State.ACTIVE:
            service.halt(f"strategy:{strategy}", reason="strategy", actor=SYSTEM, to_state=strategy_state)
        for label, quantity in POSITIONS.items():
            symbol = f"{label}{chr(ord('A') + index)}"  # its own symbol scope per case
            Position.objects.create(strategy=strategy, symbol=symbol, quantity=quantity)
            if symbol_state != State.ACTIVE:
                service.halt(f"symbol:{symbol}", reason="symbol", actor=SYSTEM, to_state=symbol_state)
            cases += [(strategy, symbol, side, quantity) for side, quantity in ORDERS]
    accepted = set()
    for global_state in (State.ACTIVE, State.REDUCING):
        if global_state != State.ACTIVE:
            service.halt("global", reason="global", actor=SYSTEM, to_state=global_state)
        for n, (strategy, symbol, side, quantity) in enumerate(cases):
            order = TradeOrder(f"{global_state}-{n}", symbol, side, quantity, Decimal(1), strategy)
            decided = decided_by_python(order)
            assert decided_by_sql(order) == decided, order
            accepted.add(decided == "accepted")
    assert accepted == {True, False}  # the cases include both answers
    assert len(cases) == len(SCOPE_STATES) * len(POSITIONS) * len(ORDERS)


def decided_by_python(order: TradeOrder) -> str:
    try:
        check(effective_state(order.symbol, order.strategy), order, position_of(order.strategy, order.symbol))
    except TradeDenied as exc:
        return exc.detail
    return "accepted"


def decided_by_sql(order: TradeOrder) -> str:
    try:
        with transaction.atomic():
            assert submit_trade(order)[1]
            raise Undo  # keep the position as it was for the next case
    except Undo:
        return "accepted"
    except TradeDenied as exc:
        return exc.detail


def test_the_function_answers_the_trade_columns_in_the_model_s_field_order(engine):
    """Model.from_db() assigns a full row by position, not by name: the function's trade
    columns must stay in Trade's field order, or answers would carry wrong values."""
    from django.utils import timezone

    from ops.trading import gate

    now = timezone.now()
    scopes = gate.trade_scopes("AAPL", "momentum")
    params = ["order-cols", "AAPL", "buy", 1, 1, "momentum", now, now, None, scopes]
    with connection.cursor() as cursor:
        cursor.execute(gate.SUBMIT_SQL, params)
        names = [column.name for column in cursor.description[gate.TRADE_COLUMNS :]]
    assert names == [field.attname for field in Trade._meta.concrete_fields]


def test_two_first_trades_on_a_new_position_both_count(transactional_db, postgres):
    """Neither finds a position row: the first creates (and so locks) it, the second's
    ON CONFLICT waits on that row and then locks it. No lost update, no duplicate row."""
    outcome: dict[str, bool] = {}

    @in_thread
    def buy(order_id: str) -> None:
        outcome[order_id] = submit_trade(TradeOrder(order_id, "NEWCO", "buy", Decimal(1), Decimal(1)))[1]

    with slow_trade_inserts(1.0, "NEW.client_order_id = 'first'"):
        first = threading.Thread(target=buy, args=("first",))
        first.start()
        wait_for_session("ops_submit_trade(", "Timeout")  # holds the new, uncommitted row
        second = threading.Thread(target=buy, args=("second",))
        second.start()
        wait_for_session("ops_submit_trade(", "Lock")
        first.join(timeout=30)
        second.join(timeout=30)
    assert outcome == {"first": True, "second": True}
    assert Position.objects.get(symbol="NEWCO").quantity == 2
