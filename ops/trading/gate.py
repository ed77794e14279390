"""The pre-trade gate: the effective state for a trade, enforced before it is recorded.

Fail closed: if the state cannot be read, the trade is refused (TradingStateUnavailable),
never let through. submit_trade() is the only way a new trade is created: the API, the
admin, Celery tasks and seed_demo call it, and the insert itself is private to it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from ops.metrics import ORDERS_DENIED
from ops.records.intake import ConflictingOrder, TradeOrder, lock_position, retry_result
from ops.records.models import Position, Side, Trade
from ops.trading.errors import InvalidTransition
from ops.trading.models import GLOBAL_SCOPE, SEVERITY, FillBooking, State, TradingState
from ops.trading.scopes import trade_scopes
from ops.trading.service import BOOK_FILL, Actor

logger = logging.getLogger(__name__)


class TradingStateUnavailable(Exception):
    """The state could not be read: refuse, never allow."""


@dataclass(frozen=True)
class Effective:
    state: str
    scope: str
    reason: str
    since: datetime | None

    def allowed_sides(self, position: Decimal) -> list[str]:
        if self.state == State.ACTIVE:
            return [Side.BUY, Side.SELL]
        if self.state == State.REDUCING and position != 0:
            return [Side.SELL] if position > 0 else [Side.BUY]
        return []


class TradeDenied(Exception):
    def __init__(self, effective: Effective, detail: str) -> None:
        super().__init__(detail)
        self.effective = effective
        self.detail = detail
        self.code = "trading_halted" if effective.state == State.HALTED else "trading_reducing"


def effective_state(symbol: str | None, strategy: str | None) -> Effective:
    """The most restrictive of global, strategy and symbol; ties go to the broadest scope.

    A plain read, deliberately without FOR SHARE: share-lockers may join each other
    without queueing behind a waiting FOR UPDATE, so under steady trading a halt could
    wait indefinitely (seen with artificially slowed trades: the halt hit
    statement_timeout). A halt must never wait on trading traffic. Each request reads
    the committed state when it starts, so no request that starts after halt() returns
    can be accepted.
    """
    scopes = trade_scopes(symbol, strategy)
    try:
        rows = list(TradingState.objects.for_scopes(scopes))
    except DatabaseError as exc:
        raise TradingStateUnavailable(str(exc)) from exc
    order = {scope: index for index, scope in enumerate(scopes)}
    rows.sort(key=lambda row: (-SEVERITY[row.state], order[row.scope]))
    if not rows or rows[0].state == State.ACTIVE:
        return Effective(State.ACTIVE, GLOBAL_SCOPE, "", None)
    top = rows[0]
    return Effective(top.state, top.scope, top.reason, top.since)


def position_of(strategy: str, symbol: str) -> Decimal:
    position = Position.objects.filter(strategy=strategy, symbol=symbol).first()
    return Decimal(position.quantity) if position else Decimal(0)


def _plain(amount: Decimal) -> str:
    # normalize() alone writes 10 as "1E+1"; people read positions as plain numbers.
    return format(amount.normalize(), "f")


def check(effective: Effective, order: TradeOrder, position: Decimal) -> None:
    if effective.state == State.ACTIVE:
        return
    if effective.state == State.HALTED:
        raise TradeDenied(effective, f"Trading is halted for {effective.scope}: {effective.reason}")
    delta = order.quantity if order.side == Side.BUY else -order.quantity
    after = position + delta
    # Reducing-only: the trade must bring the position toward zero without passing it.
    shrinks = position != 0 and abs(after) < abs(position) and (after == 0 or (after > 0) == (position > 0))
    if not shrinks:
        raise TradeDenied(
            effective,
            f"{effective.scope} is reducing-only: a {order.side} of {order.quantity} {order.symbol} "
            f"would take the {order.strategy} position from {_plain(position)} to {_plain(after)}.",
        )


def submit_trade(order: TradeOrder, api_client_id: int | None = None) -> tuple[Trade, bool]:
    """Gate and record one order from the trading engine (api_client_id: the id of the
    API client that sent it; trading sits below the API and knows no client model).
    Raises TradeDenied, TradingStateUnavailable or ConflictingOrder.

    On Postgres the whole gate is one statement (ops_submit_trade(), migration 0012):
    this sits in the path of every order, and its cost is mostly round trips. Elsewhere
    (SQLite, the embedded default) the same steps run as ORM statements."""
    if connection.vendor == "postgresql":
        return _submit_in_one_statement(order, api_client_id)
    existing = Trade.objects.filter(client_order_id=order.client_order_id).first()
    if existing is not None:
        # Already recorded (before any halt): a retry returns it, whatever the state now.
        return retry_result(order, existing)
    try:
        with transaction.atomic():
            # Lock first, read the state after: any wait on the lock happens before the
            # state is read, so the decision uses the freshest committed state.
            position = lock_position(order.strategy, order.symbol)
            existing = Trade.objects.filter(client_order_id=order.client_order_id).first()
            if existing is not None:
                # An identical request committed while we waited for the lock: it is this
                # order, already recorded, and must not be refused as a new one.
                return retry_result(order, existing)
            check(effective_state(order.symbol, order.strategy), order, Decimal(position.quantity))
            return _insert(order, api_client_id, position)
    except IntegrityError as exc:
        # As on Postgres: a row changed meanwhile (SQLite checks foreign keys at commit).
        logger.error("pre-trade gate failed closed for %s: %s", order.client_order_id, exc)
        raise TradingStateUnavailable(str(exc)) from exc


# The client's id is a placeholder: a Sender's lookup fills it in from the same statement.
SUBMIT_CALL = "ops_submit_trade(%s, %s, %s, %s, %s, %s, %s, %s, {client}, %s::varchar[])"
SUBMIT_SQL = "SELECT * FROM " + SUBMIT_CALL.format(client="%s")  # noqa: S608 - no values
TRADE_COLUMNS = 6  # ops_submit_trade()'s columns before the trade's own


@dataclass(frozen=True)
class Sender:
    """Who sent an order, to be found by the gate's own statement (submit_trade_from()).

    The sender is the row of `table` that `condition` matches, in SQL that names the
    table `sender` (the condition must name a unique key: at most one row). Its id is
    the trade's api_client_id. `found` gets the sender's `columns` as soon as the row is
    read, whatever the gate then decides (a refusal included).
    """

    table: str
    condition: str
    params: tuple
    columns: tuple[str, ...] = ()
    found: Callable[[dict], None] = lambda values: None


def submit_trade_from(order: TradeOrder, sender: Sender) -> tuple[Trade, bool] | None:
    """submit_trade() for a sender not checked yet, checked in the same statement.

    On Postgres, the lookup and ops_submit_trade() are one statement, one round trip:
    the API's token check and the gate, on every order (P3, docs/benchmarks.md). The
    function only runs for a sender that was found.

    None: nothing was submitted, because no sender matched or because the database has
    no one-statement gate (SQLite). The caller then checks its sender the usual way
    (for the answer that says why) and calls submit_trade().
    """
    if connection.vendor != "postgresql":
        return None
    quote = connection.ops.quote_name
    columns = [f"sender.{quote(column)}" for column in sender.columns]
    # LEFT JOIN: a sender found always gives a row, so an empty answer can only mean
    # "no sender", never "the gate said nothing" (which must not be tried again).
    sql = (
        f"SELECT {', '.join([*columns, 'gate.*'])} FROM {quote(sender.table)} AS sender "  # noqa: S608 - names, not values
        f"LEFT JOIN LATERAL {SUBMIT_CALL.format(client='sender.id')} AS gate ON true WHERE {sender.condition}"
    )
    head, tail = _call_params(order)
    row, names = _run(order, sql, [*head, *tail, *sender.params])
    if row is None:
        return None
    sender.found(dict(zip(sender.columns, row, strict=False)))
    if row[len(columns)] is None:
        raise TradingStateUnavailable(f"ops_submit_trade() answered no row for {order.client_order_id}")
    return _outcome(order, row[len(columns) :], names[len(columns) :])


def _call_params(order: TradeOrder) -> tuple[list, list]:
    """ops_submit_trade()'s arguments before the client's id, and after it."""
    now = timezone.now()
    head = [
        order.client_order_id,
        order.symbol,
        order.side,
        order.quantity,
        order.price,
        order.strategy,
        order.executed_at or now,
        now,
    ]
    return head, [trade_scopes(order.symbol, order.strategy)]


def _submit_in_one_statement(order: TradeOrder, api_client_id: int | None) -> tuple[Trade, bool]:
    """submit_trade() on Postgres: lock, state read, rule, insert and position move in
    one call, the same steps in the same order as the ORM path."""
    head, tail = _call_params(order)
    row, names = _run(order, SUBMIT_SQL, [*head, api_client_id, *tail])
    return _outcome(order, row, names)


def _run(order: TradeOrder, sql: str, params: list) -> tuple[tuple | None, list[str]]:
    """The statement's one row (None if it has none) and its column names."""
    # In autocommit (the API) the call is its own transaction. Inside a caller's
    # transaction (the admin, seed_demo) a savepoint keeps that transaction usable if
    # the call fails, as the ORM path's atomic block does.
    savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    try:
        with savepoint, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone(), [column.name for column in cursor.description]
    except DataError:
        raise  # a value the database cannot hold: the API's 400, not an outage
    except DatabaseError as exc:
        # Fail closed: the order is not accepted. Usually nothing was recorded; only a
        # connection cut while the call ran on the server leaves the outcome unknown here
        # (the server may have committed it), which the idempotent retry resolves.
        # That includes an IntegrityError: the form has checked every constraint, so only
        # a row changed meanwhile gets here (the API client deleted after its token was
        # checked); a retry is then answered by the token check.
        logger.error("pre-trade gate failed closed for %s: %s", order.client_order_id, exc)
        raise TradingStateUnavailable(str(exc)) from exc


def _outcome(order: TradeOrder, row: tuple, names: list[str]) -> tuple[Trade, bool]:
    """ops_submit_trade()'s row as submit_trade() answers it."""
    outcome, state, scope, reason, since, position = row[:TRADE_COLUMNS]
    if outcome == "refused":
        check(Effective(state, scope, reason, since), order, position)
        # check() raised above; reaching here means the SQL and Python rules disagree.
        raise RuntimeError(f"ops_submit_trade refused {order} that check() allows")
    trade = Trade.from_db(connection.alias, names[TRADE_COLUMNS:], row[TRADE_COLUMNS:])
    if outcome == "recorded":
        return retry_result(order, trade)
    return trade, True


def submit_reported_trade(order: TradeOrder) -> int | None:
    """submit_trade() for callers with nobody to answer (a Celery task).

    A refusal (TradeDenied) or a conflicting id is final: it is logged, counted like the
    API's, and returns None, since a retry would be refused again. A state that cannot be
    read (TradingStateUnavailable, a lost connection) is not a refusal: it is raised, so
    the task retries later and the reported trade is not dropped."""
    try:
        trade, _ = submit_trade(order)
    except TradeDenied as exc:
        ORDERS_DENIED.labels(exc.code).inc()
        logger.warning("trade %s refused by the gate (%s): %s", order.client_order_id, exc.code, exc.detail)
        return None
    except ConflictingOrder as exc:
        logger.error("trade %s not recorded: %s", order.client_order_id, exc)
        return None
    return trade.pk


def book_fill(order: TradeOrder, *, actor: Actor, reason: str) -> tuple[Trade, bool]:
    """Record a fill that already happened at the broker, past the gate, on purpose.

    Not a way around the kill switch for new orders: it needs its own permission
    (ops.book_fill, supervisors), a reason, and writes a FillBooking with the trade in
    one transaction, naming the state it went past. Idempotent on client_order_id like
    submit_trade (a retry books nothing twice). Raises NotPermitted, InvalidTransition
    (no reason) or ConflictingOrder.
    """
    actor.require(BOOK_FILL, "book a broker fill past the gate")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidTransition("A reason is required: which broker fill this is, and why it is booked here.")
    with transaction.atomic():
        position = lock_position(order.strategy, order.symbol)
        existing = Trade.objects.filter(client_order_id=order.client_order_id).first()
        if existing is not None:
            return retry_result(order, existing)
        effective = effective_state(order.symbol, order.strategy)
        trade, created = _insert(order, None, position)
        if created:
            FillBooking.objects.create(
                trade=trade,
                actor=actor.name,
                origin=actor.origin,
                reason=reason,
                state_at_booking=effective.state,
                scope_at_booking=effective.scope,
            )
    logger.warning(
        "fill %s booked past the gate by %s (%s) while %s was %s: %s",
        order.client_order_id,
        actor.name,
        actor.origin,
        effective.scope,
        effective.state,
        reason,
    )
    return trade, created


def _insert(order: TradeOrder, api_client_id: int | None, position: Position) -> tuple[Trade, bool]:
    """Insert the trade and move its position, under the position lock the gate holds."""
    try:
        # The savepoint keeps the caller's transaction usable if the insert collides.
        with transaction.atomic():
            trade = Trade.objects.create(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                price=order.price,
                strategy=order.strategy,
                executed_at=order.executed_at or timezone.now(),
                api_client_id=api_client_id,
            )
            # UPDATE ... SET quantity = quantity + delta, under the row lock: no lost update.
            delta = trade.quantity if trade.side == Side.BUY else -trade.quantity
            Position.objects.filter(pk=position.pk).update(quantity=F("quantity") + delta)
    except IntegrityError:
        # Two identical requests raced past the lookup; the loser answers as a retry.
        existing = Trade.objects.filter(client_order_id=order.client_order_id).first()
        if existing is None:
            raise
        return retry_result(order, existing)
    return trade, True
