"""JSON API for machine clients (contract: ARCHITECTURE.md, "HTTP contract")."""

from __future__ import annotations

from decimal import Decimal

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ops.api import openapi
from ops.api.decorators import api_view
from ops.api.errors import ApiError, error_response
from ops.api.models import ApiClient, Scope
from ops.api.parsing import read_json_object
from ops.api.schemas import AnalysisRequest, TradeRequest, TradingStatusQuery
from ops.records.intake import ConflictingOrder, TradeOrder, record_analysis
from ops.records.models import Analysis, Trade
from ops.trading.gate import TradeDenied, TradingStateUnavailable, effective_state, position_of, submit_trade


def _decimal(value: Decimal | None, places: int) -> str | None:
    # As the database stores it, so a fresh row and its retry serialise identically
    # without reading the row back.
    return None if value is None else f"{Decimal(value).quantize(Decimal(1).scaleb(-places)):f}"


def trade_json(trade: Trade) -> dict:
    return {
        "id": trade.pk,
        "client_order_id": trade.client_order_id,
        "symbol": trade.symbol,
        "side": trade.side,
        # Decimals as strings: a JSON float would round them.
        "quantity": _decimal(trade.quantity, 8),
        "price": _decimal(trade.price, 8),
        "strategy": trade.strategy,
        "executed_at": trade.executed_at.isoformat(),
        "created_at": trade.created_at.isoformat(),
    }


def analysis_json(analysis: Analysis) -> dict:
    return {
        "id": analysis.pk,
        "symbol": analysis.symbol,
        "signal": analysis.signal,
        "confidence": _decimal(analysis.confidence, 4),
        "model_version": analysis.model_version,
        "price": _decimal(analysis.price, 8),
        "analyzed_at": analysis.analyzed_at.isoformat(),
        "created_at": analysis.created_at.isoformat(),
    }


@api_view("POST", scope=Scope.TRADES, unavailable="trading_state_unavailable", counts_refusals=True)
def create_trade(request: HttpRequest, client: ApiClient) -> JsonResponse:
    order = TradeOrder.from_dict(TradeRequest.validate(read_json_object(request)))
    try:
        trade, created = submit_trade(order, api_client=client)
    except TradeDenied as exc:
        raise ApiError(423, exc.code, exc.detail, extra=exc.effective.as_json()) from None
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
            extra={"trade": trade_json(exc.existing)},
        ) from None
    return JsonResponse(trade_json(trade), status=201 if created else 200)


@api_view("POST", scope=Scope.ANALYSES)
def create_analysis(request: HttpRequest, client: ApiClient) -> JsonResponse:
    data = AnalysisRequest.validate(read_json_object(request))
    analysis = record_analysis(data, api_client=client)
    return JsonResponse(analysis_json(analysis), status=201)


@api_view("GET", scope=Scope.STATUS, unavailable="trading_state_unavailable")
def trading_status(request: HttpRequest, client: ApiClient) -> JsonResponse:
    repeated = sorted(key for key, values in request.GET.lists() if len(values) > 1)
    if repeated:
        raise ApiError(
            400,
            "validation_failed",
            "Repeated parameters.",
            fields={key: ["Give this parameter once."] for key in repeated},
        )
    params = TradingStatusQuery.validate({key: value for key, value in request.GET.items() if value != ""})
    symbol, strategy = params.get("symbol"), params.get("strategy", "default")
    try:
        effective = effective_state(symbol, strategy)
    except TradingStateUnavailable:
        raise ApiError(503, "trading_state_unavailable", "The trading state cannot be read.") from None
    position = position_of(strategy, symbol) if symbol else Decimal(0)
    return JsonResponse({**effective.as_json(), "allowed_sides": effective.allowed_sides(position)})


@csrf_exempt  # no cookie, no state: a POST gets the API's JSON 405, not Django's CSRF page
def openapi_document(request: HttpRequest) -> JsonResponse:
    """The API's OpenAPI 3.1 description. No token: it describes the API and holds no
    data, and a client (or a code generator) reads it before it has a token."""
    if request.method != "GET":
        return error_response(405, "method_not_allowed", "Use GET.", headers={"Allow": "GET"})
    return JsonResponse(openapi.document())


# Read by the OpenAPI test, as api_view sets them: GET only, no scope.
openapi_document.api_methods = ("GET",)
openapi_document.api_scope = None
