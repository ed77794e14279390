"""Recording trades and analyses: the one path every creation goes through.

The API, the admin, Celery tasks and seed_demo all call these functions, so whatever a
trade implies besides its row happens once, in the same transaction, whoever wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ops.models import Analysis, ApiClient, Position, Side, Trade


@dataclass(frozen=True)
class TradeOrder:
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    strategy: str = "default"
    executed_at: datetime | None = None

    def matches(self, trade: Trade) -> bool:
        """True when `trade` is what this order would have recorded (an idempotent retry).

        executed_at only counts when the retry sends one: an order without it means
        "now", which differs on every retry.
        """
        same = (
            trade.symbol == self.symbol
            and trade.side == self.side
            and trade.quantity == self.quantity
            and trade.price == self.price
            and trade.strategy == self.strategy
        )
        return same and (self.executed_at is None or trade.executed_at == self.executed_at)

    @classmethod
    def from_dict(cls, data: dict) -> TradeOrder:
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


class ConflictingOrder(Exception):
    """The client_order_id is taken by a trade with other content."""

    def __init__(self, existing: Trade) -> None:
        super().__init__(f"client_order_id {existing.client_order_id!r} is already used by another trade")
        self.existing = existing


def record_trade(order: TradeOrder, api_client: ApiClient | None = None) -> tuple[Trade, bool]:
    """Record `order` once; return (trade, created). Raises ConflictingOrder."""
    existing = Trade.objects.filter(client_order_id=order.client_order_id).first()
    if existing is not None:
        return retry_result(order, existing)
    return insert_trade(order, api_client)


def insert_trade(
    order: TradeOrder, api_client: ApiClient | None = None, locked_position: Position | None = None
) -> tuple[Trade, bool]:
    """Insert the trade and move its position. For callers that already looked up the
    client_order_id and, optionally, hold the position lock (the gate)."""
    try:
        # The savepoint keeps the caller's transaction usable if the insert collides.
        with transaction.atomic():
            position = locked_position or lock_position(order.strategy, order.symbol)
            trade = Trade.objects.create(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                price=order.price,
                strategy=order.strategy,
                executed_at=order.executed_at or timezone.now(),
                api_client=api_client,
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


def lock_position(strategy: str, symbol: str) -> Position:
    """The (strategy, symbol) position row, created if new, locked until commit.

    Every trade path takes this lock before it inserts the trade. The insert's trigger
    then locks a counter row (ops_metriccounter), so the order is always position first,
    counter second, and no two paths can deadlock on each other. A transaction that
    records several trades must lock all their positions first, sorted (see ops.demo).
    """
    position, _ = Position.objects.select_for_update().get_or_create(strategy=strategy, symbol=symbol)
    return position


def retry_result(order: TradeOrder, existing: Trade) -> tuple[Trade, bool]:
    if not order.matches(existing):
        raise ConflictingOrder(existing)
    return existing, False


def record_analysis(data: dict, api_client: ApiClient | None = None) -> Analysis:
    return Analysis.objects.create(
        symbol=data["symbol"],
        signal=data["signal"],
        confidence=data["confidence"],
        model_version=data["model_version"],
        price=data.get("price"),
        analyzed_at=data.get("analyzed_at") or timezone.now(),
        api_client=api_client,
    )
