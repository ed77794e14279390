"""The API's answers: the bodies the views send, and (the same declarations) their
schemas in the OpenAPI document. The shared pieces, and ErrorBody, are in bodies.py."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ops.api.bodies import DateTimeText, DecimalText, ErrorBody, ResponseModel
from ops.api.schemas import STRATEGY_SCHEMA, SYMBOL_SCHEMA
from ops.records.models import MONEY, Side, Signal
from ops.trading.models import State

Symbol = Annotated[str, Field(json_schema_extra=SYMBOL_SCHEMA)]
Strategy = Annotated[str, Field(json_schema_extra=STRATEGY_SCHEMA)]
Money = DecimalText(MONEY["decimal_places"])
SideName = Literal[tuple(Side.values)]  # type: ignore[valid-type]


class EffectiveState(ResponseModel):
    state: Literal[tuple(State.values)]  # type: ignore[valid-type]
    scope: str = Field(
        description="The scope that decides: global, strategy:<name> or symbol:<TICKER>.",
        json_schema_extra={"pattern": r"^(global|strategy:.+|symbol:.+)$"},
    )
    reason: str
    since: DateTimeText | None = Field(description="null while ACTIVE.")


class TradingStatus(EffectiveState):
    allowed_sides: list[SideName] = Field(
        description="What the gate would accept now for this strategy and symbol."
    )


class TradingDenied(EffectiveState, ErrorBody):
    """The gate refused the trade; the body names the state that decided."""

    error: Literal["trading_halted", "trading_reducing"]


class Trade(ResponseModel):
    id: int
    client_order_id: str
    symbol: Symbol
    side: SideName
    quantity: Money
    price: Money
    strategy: Strategy
    executed_at: DateTimeText
    created_at: DateTimeText


class DuplicateOrder(ErrorBody):
    error: Literal["duplicate_client_order_id"]
    trade: Trade


class Analysis(ResponseModel):
    id: int
    symbol: Symbol
    signal: Literal[tuple(Signal.values)]  # type: ignore[valid-type]
    confidence: DecimalText(4, "From 0 to 1, to four places.")
    model_version: str
    price: Money | None
    analyzed_at: DateTimeText
    created_at: DateTimeText
