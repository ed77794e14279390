"""Recording trades and analyses.

A new trade is created only by the pre-trade gate (ops.trading.gate.submit_trade),
which the API, the admin, Celery tasks and seed_demo all call: there is no ungated way
to record one. This module holds what the gate builds on (the order, its idempotency
rules, the position lock) and the analysis path, which no halt governs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from ops.records.models import Analysis, Position, Trade


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


class InvalidOrder(ValueError):
    """An order whose fields do not validate (fields: name -> messages). Raised where no
    HTTP request is answered (a Celery task); the API answers its own 400 instead."""

    def __init__(self, detail: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields or {}


class ConflictingOrder(Exception):
    """The client_order_id is taken by a trade with other content."""

    def __init__(self, existing: Trade) -> None:
        super().__init__(f"client_order_id {existing.client_order_id!r} is already used by another trade")
        self.existing = existing


def lock_position(strategy: str, symbol: str) -> Position:
    """The (strategy, symbol) position row, created if new, locked until commit.

    Every trade path takes this lock before it inserts the trade. The insert's trigger
    then locks a counter row (ops_metriccounter), so the order is always position first,
    counter second, and no two paths can deadlock on each other. A transaction that
    records several trades must lock all their positions first, sorted (see ops.demo).
    On Postgres the gate takes the same lock in SQL, in ops_submit_trade() (migration
    0012), in the same order.
    """
    position, _ = Position.objects.select_for_update().get_or_create(strategy=strategy, symbol=symbol)
    return position


def retry_result(order: TradeOrder, existing: Trade) -> tuple[Trade, bool]:
    if not order.matches(existing):
        raise ConflictingOrder(existing)
    return existing, False


def record_analysis(data: dict, api_client_id: int | None = None) -> Analysis:
    # The API client's id: records sit below the API and know no client model.
    return Analysis.objects.create(
        symbol=data["symbol"],
        signal=data["signal"],
        confidence=data["confidence"],
        model_version=data["model_version"],
        price=data.get("price"),
        analyzed_at=data.get("analyzed_at") or timezone.now(),
        api_client_id=api_client_id,
    )
