"""JSON API for machine clients (contract: ARCHITECTURE.md, "HTTP contract").

The bodies are the models of responses.py; the OpenAPI document (ops/openapi.py) is
generated from the same models."""

from __future__ import annotations

from decimal import Decimal

from django.http import HttpRequest, HttpResponse

from ops.api import responses
from ops.api.auth import Credentials
from ops.api.decorators import api_view
from ops.api.errors import ApiError
from ops.api.models import ApiClient, Scope
from ops.api.parsing import read_json_object
from ops.api.schemas import AnalysisRequest, TradeRequest, TradingStatusQuery
from ops.records.intake import ConflictingOrder, TradeOrder, record_analysis
from ops.trading.gate import (
    TradeDenied,
    TradingStateUnavailable,
    effective_state,
    position_of,
    submit_trade,
    submit_trade_from,
)


@api_view(
    "POST",
    scope=Scope.TRADES,
    unavailable="trading_state_unavailable",
    counts_refusals=True,
    authenticates=False,
)
def create_trade(request: HttpRequest, credentials: Credentials) -> HttpResponse:
    try:
        order = TradeOrder.from_dict(TradeRequest.validate(read_json_object(request)))
    except ApiError:
        credentials.client()  # 401 and 403 come before a 400, as on every endpoint
        raise
    try:
        # The token is checked in the gate's own statement: one round trip per order.
        submitted = submit_trade_from(order, credentials.sender())
        if submitted is None:  # not submitted: the token did not pass, or SQLite
            submitted = submit_trade(order, api_client_id=credentials.client().pk)
        trade, created = submitted
    except TradeDenied as exc:
        raise ApiError(
            423, exc.code, exc.detail, shape=responses.TradingDenied, **vars(exc.effective)
        ) from None
    except TradingStateUnavailable:
        # Fail closed: without the state there is no trading. Not "refused", though: a
        # connection cut while the gate's call ran leaves the outcome with the server,
        # which may have committed it; the idempotent retry tells the client which.
        raise ApiError(
            503,
            "trading_state_unavailable",
            "The trading state cannot be read; the trade is not confirmed. Retry with the same "
            "client_order_id: a trade the database did record is answered 200, never recorded twice.",
        ) from None
    except ConflictingOrder as exc:
        raise ApiError(
            409,
            "duplicate_client_order_id",
            str(exc) + "; an identical retry returns the original trade.",
            shape=responses.DuplicateOrder,
            trade=responses.Trade.of(exc.existing),
        ) from None
    return responses.Trade.of(trade).response(201 if created else 200)


@api_view("POST", scope=Scope.ANALYSES)
def create_analysis(request: HttpRequest, client: ApiClient) -> HttpResponse:
    data = AnalysisRequest.validate(read_json_object(request))
    analysis = record_analysis(data, api_client_id=client.pk)
    return responses.Analysis.of(analysis).response(201)


@api_view("GET", scope=Scope.STATUS, unavailable="trading_state_unavailable")
def trading_status(request: HttpRequest, client: ApiClient) -> HttpResponse:
    repeated = sorted(key for key, values in request.GET.lists() if len(values) > 1)
    if repeated:
        raise ApiError(
            400,
            "validation_failed",
            "Repeated parameters.",
            fields={key: ["Give this parameter once."] for key in repeated},
        )
    params = TradingStatusQuery.validate_query(request.GET)
    symbol, strategy = params.get("symbol"), params.get("strategy", "default")
    try:
        effective = effective_state(symbol, strategy)
    except TradingStateUnavailable:
        raise ApiError(503, "trading_state_unavailable", "The trading state cannot be read.") from None
    position = position_of(strategy, symbol) if symbol else Decimal(0)
    return responses.TradingStatus.model_validate(
        {**vars(effective), "allowed_sides": effective.allowed_sides(position)}
    ).response()
