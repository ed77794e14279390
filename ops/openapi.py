"""The OpenAPI 3.1 description of /api/v1, and its view (GET /api/v1/openapi.json).

Every schema is generated from the pydantic model that does the work: the request
bodies and queries from the models that validate them (ops/api/schemas.py,
ops/alerts/intake.py, ops/alerts/schemas.py), the answers from the models the views
build them with (ops/api/responses.py, ops/api/bodies.py, ops/alerts/schemas.py). What
is written here is the wiring: paths, status codes, descriptions and examples.

Here, in the wiring layer, not in ops.api: the document describes the alert endpoints
too, and ops.alerts sits above ops.api. Built per call: it reads API_MAX_BODY_BYTES, the
database in use (SQLite keeps fewer digits) and the date (the date-time window).

Tests: ops/tests/test_openapi.py (valid OpenAPI 3.1, exactly the URLconf's /api/v1
routes, methods and scopes, every documented answer real), ops/tests/test_api_schemas.py
(the decimal patterns allow exactly what the models accept) and
ops/tests/test_openapi_fuzz.py (schemathesis with all its checks against a live gunicorn).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from ops.alerts.intake import AlertmanagerNotification
from ops.alerts.schemas import AlertList, AlertListQuery, StoredAlerts
from ops.api import responses
from ops.api.bodies import ErrorBody
from ops.api.errors import error_response
from ops.api.models import Scope
from ops.api.schemas import AnalysisRequest, QueryModel, TradeRequest, TradingStatusQuery

JSON = "application/json"
SECURITY_SCHEME = "bearerToken"
REF_TEMPLATE = "#/components/schemas/{model}"

# Requests are described as they are validated, answers as they are written.
MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (TradeRequest, "validation"),
    (AnalysisRequest, "validation"),
    (AlertmanagerNotification, "validation"),
    (ErrorBody, "serialization"),
    (responses.EffectiveState, "serialization"),
    (responses.TradingStatus, "serialization"),
    (responses.TradingDenied, "serialization"),
    (responses.Trade, "serialization"),
    (responses.DuplicateOrder, "serialization"),
    (responses.Analysis, "serialization"),
    (StoredAlerts, "serialization"),
    (AlertList, "serialization"),
]


# The error shape's component has always been `Error`; its class is ErrorBody, since
# `Error` is Django's (a check message).
RENAMED = {ErrorBody.__name__: "Error"}


class ComponentNames(GenerateJsonSchema):
    def normalize_name(self, name: str) -> str:
        return RENAMED.get(name) or super().normalize_name(name)


def _name(model: type[BaseModel]) -> str:
    return RENAMED.get(model.__name__, model.__name__)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=_name(model))}


def _schemas() -> dict[str, Any]:
    """Every model's schema and those of the models inside it, each under its own name."""
    _, top = models_json_schema(MODELS, ref_template=REF_TEMPLATE, schema_generator=ComponentNames)
    schemas = top["$defs"]
    # A second model of the same name would be renamed, and every $ref here miss it.
    missing = {_name(model) for model, _ in MODELS} - set(schemas)
    if missing:  # not an assert: python -O would drop it
        raise RuntimeError(f"renamed in the document: {missing}")
    return schemas


def _query(model: type[QueryModel]) -> list[dict[str, Any]]:
    """A query's parameters, from the model that validates them."""
    properties = model.model_json_schema(ref_template=REF_TEMPLATE)["properties"]
    parameters = []
    for name, schema in properties.items():
        if model.blank_is_absent:
            choices = [part for part in schema.get("anyOf", [schema]) if part.get("type") != "null"]
            schema = {"anyOf": [*choices, {"const": ""}]}
        schema.pop("title", None)
        if name in model.defaults:
            schema["default"] = model.defaults[name]
        parameters.append({"name": name, "in": "query", "schema": schema})
    return parameters


def _error(
    description: str, model: type[ErrorBody] = ErrorBody, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref(model)}}}
    if headers:
        response["headers"] = headers
    return response


def _responses() -> dict[str, Any]:
    limit = settings.API_MAX_BODY_BYTES
    return {
        "BadRequest": _error(
            "Bad input, nothing written: `validation_failed` (with `fields`), `invalid_json`, "
            "`unsupported_content_type` (the body must be application/json), `value_out_of_range`; "
            "`invalid_notification` on the webhook."
        ),
        "Unauthorized": _error(
            "`unauthorized`: no bearer token, or an unknown or revoked one.",
            headers={
                "WWW-Authenticate": {
                    "required": True,
                    "schema": {"type": "string", "const": 'Bearer realm="investiq"'},
                }
            },
        ),
        "Forbidden": _error("`forbidden_scope`: the token lacks this endpoint's scope."),
        "PayloadTooLarge": _error(f"`payload_too_large`: the body is over {limit} bytes."),
        "DatabaseUnavailable": _error("`database_unavailable`: the database cannot be reached; retry later."),
        "TradingStateUnavailable": _error(
            "`trading_state_unavailable`: the trading state cannot be read, so the gate fails closed: "
            "the trade is not confirmed. Retry with the same `client_order_id`; a trade the database "
            "did record (a connection cut mid-call) is then answered 200, and is never recorded twice."
        ),
    }


EXAMPLES = {
    "TradeRequest": {
        "buy": {
            "client_order_id": "o-1",
            "symbol": "AAPL",
            "side": "buy",
            "quantity": "10",
            "price": "228.50",
            "strategy": "momentum",
        },
        "sell": {
            "client_order_id": "o-2",
            "symbol": "BRK.B",
            "side": "sell",
            "quantity": 5,
            "price": 471.25,
            "executed_at": "2026-11-27T14:30:00Z",
        },
    },
    "AnalysisRequest": {
        "hold": {
            "symbol": "AAPL",
            "signal": "hold",
            "confidence": 0.82,
            "model_version": "lstm-2026.11",
            "price": "228.50",
        }
    },
    "AlertmanagerNotification": {
        "firing": {
            "version": "4",
            "status": "firing",
            "receiver": "investiq-console",
            "alerts": [
                {
                    "status": "firing",
                    "fingerprint": "3f2a9c1d0b7e4a65",
                    "startsAt": "2026-11-27T14:30:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "labels": {"alertname": "HighLatency", "severity": "warning"},
                    "annotations": {"summary": "p95 latency above 1 s"},
                    "generatorURL": "http://prometheus:9090/graph",
                }
            ],
        }
    },
}


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    examples = {name: {"value": value} for name, value in EXAMPLES[_name(model)].items()}
    return {"required": True, "content": {JSON: {"schema": _ref(model), "examples": examples}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _common(*, body: bool, unavailable: str = "DatabaseUnavailable") -> dict[str, Any]:
    responses = {
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
        "503": {"$ref": f"#/components/responses/{unavailable}"},
    }
    if body:
        responses["413"] = {"$ref": "#/components/responses/PayloadTooLarge"}
    return responses


def _scope(scope: Scope) -> list[dict[str, list[str]]]:
    # OpenAPI 3.1 lets a non-OAuth requirement list roles: here, the token scope needed.
    return [{SECURITY_SCHEME: [scope.value]}]


def _paths() -> dict[str, Any]:
    return {
        "/api/v1/trades": {
            "post": {
                "operationId": "createTrade",
                "summary": "The pre-trade gate: check the trading state, then record the trade.",
                "description": (
                    "Idempotent on `client_order_id`: an identical retry answers 200 with the "
                    "original trade (whatever the state now); the same id with other content is 409. "
                    "A retry that leaves out `executed_at` matches the original."
                ),
                "security": _scope(Scope.TRADES),
                "requestBody": _json_body(TradeRequest),
                "responses": {
                    "201": _ok("Recorded.", _ref(responses.Trade)),
                    "200": _ok(
                        "An identical retry: the trade recorded the first time.", _ref(responses.Trade)
                    ),
                    **_common(body=True, unavailable="TradingStateUnavailable"),
                    "409": _error(
                        "`duplicate_client_order_id`: that id was recorded with other content (in `trade`).",
                        responses.DuplicateOrder,
                    ),
                    "423": _error(
                        "`trading_halted` or `trading_reducing`: the kill switch refused; nothing recorded.",
                        responses.TradingDenied,
                    ),
                },
            }
        },
        "/api/v1/trading/status": {
            "get": {
                "operationId": "getTradingStatus",
                "summary": "The effective trading state for a strategy and symbol.",
                "security": _scope(Scope.STATUS),
                "parameters": _query(TradingStatusQuery),
                "responses": {
                    "200": _ok(
                        "The most restrictive of global, strategy and symbol.", _ref(responses.TradingStatus)
                    ),
                    **_common(body=False, unavailable="TradingStateUnavailable"),
                },
            }
        },
        "/api/v1/analyses": {
            "post": {
                "operationId": "createAnalysis",
                "summary": "Record an analysis from the ML pipeline.",
                "security": _scope(Scope.ANALYSES),
                "requestBody": _json_body(AnalysisRequest),
                "responses": {"201": _ok("Recorded.", _ref(responses.Analysis)), **_common(body=True)},
            }
        },
        "/api/v1/alerts/alertmanager": {
            "post": {
                "operationId": "receiveAlertmanagerNotification",
                "summary": "Alertmanager's webhook into the alert store.",
                "description": (
                    "One row per fingerprint and startsAt; a resolved alert stays resolved; "
                    "redelivery is harmless. Mapped alerts may change the trading state (ALERT_ACTIONS)."
                ),
                "security": _scope(Scope.ALERTS),
                "requestBody": _json_body(AlertmanagerNotification),
                "responses": {
                    "200": _ok("Stored.", _ref(StoredAlerts)),
                    **_common(body=True),
                },
            }
        },
        "/api/v1/alerts": {
            "get": {
                "operationId": "listAlerts",
                "summary": "The alert store, newest first.",
                "security": _scope(Scope.STATUS),
                "parameters": _query(AlertListQuery),
                "responses": {
                    "200": _ok(
                        "Alerts, and the monitoring chain's state: whether the Watchdog heartbeat "
                        "still arrives (`silent` when older than MONITORING_HEARTBEAT_MAX_AGE_SECONDS, "
                        "`not_connected` when none ever did), so an empty list is not mistaken for "
                        "a quiet day.",
                        _ref(AlertList),
                    ),
                    **_common(body=False),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "summary": "This document.",
                "description": "No token needed: it holds no data, and clients read it before they have one.",
                "security": [],
                "responses": {"200": _ok("OpenAPI 3.1.", {"type": "object", "required": ["openapi"]})},
            }
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built per call: it reads API_MAX_BODY_BYTES)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "InvestIQ Ops Console API",
            "version": "1",
            "description": (
                "The pre-trade gate, the records of trades and analyses, the trading status and "
                "the alert store. Send `Authorization: Bearer <token>`; each token carries scopes "
                "(trades, analyses, alerts, status). Every error body is "
                '`{"error": code, "detail": text, "fields": {...}}` (fields only for validation '
                "errors). Decimals are returned as strings. A method an endpoint does not take "
                "gets 405 `method_not_allowed` with an `Allow` header."
            ),
        },
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Per-client token (manage.py create_api_token), stored hashed.",
                }
            },
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }


@csrf_exempt  # no cookie, no state: a POST gets the API's JSON 405, not Django's CSRF page
def openapi_document(request: HttpRequest) -> JsonResponse:
    """The API's OpenAPI 3.1 description. No token: it describes the API and holds no
    data, and a client (or a code generator) reads it before it has a token."""
    if request.method != "GET":
        return error_response(405, "method_not_allowed", "Use GET.", headers={"Allow": "GET"})
    return JsonResponse(document())


# Read by the OpenAPI test, as api_view sets them: GET only, no scope.
openapi_document.api_methods = ("GET",)
openapi_document.api_scope = None
