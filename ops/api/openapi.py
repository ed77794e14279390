"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json.

The request bodies and query parameters are generated from the pydantic models that
validate them (ops/api/schemas.py, and ops/alerts/intake.py for Alertmanager's payload):
one definition, no second copy to drift. The rest (responses, errors, paths) is written
here as data, borrowing from the code whatever would otherwise be a copy: the choices,
the body limit, the alert list's bounds. Built per call: it reads API_MAX_BODY_BYTES, the
database in use (SQLite keeps fewer digits) and the date (the date-time window).

Tests: ops/tests/test_openapi.py (valid OpenAPI 3.1, exactly the URLconf's /api/v1
routes, methods and scopes), ops/tests/test_api_schemas.py (the decimal patterns allow
exactly what the models accept) and ops/tests/test_openapi_fuzz.py (schemathesis with
all its checks against a live gunicorn).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from pydantic import BaseModel

from ops.alerts.intake import AlertmanagerNotification
from ops.alerts.models import AlertStatus
from ops.alerts.views import DEFAULT_LIMIT, MAX_LIMIT
from ops.api.models import Scope
from ops.api.schemas import AnalysisRequest, RequestModel, TradeRequest, TradingStatusQuery
from ops.records.models import Side, Signal
from ops.trading.models import State

JSON = "application/json"
SECURITY_SCHEME = "bearerToken"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# The response's fields validated on the way in are described as the request model does.
SYMBOL = TradeRequest.model_json_schema()["properties"]["symbol"]
STRATEGY = TradeRequest.model_json_schema()["properties"]["strategy"]["anyOf"][0]
DATE_TIME = {"type": "string", "format": "date-time"}
OUTPUT_DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]+$", "description": "A decimal as text."}


def _model(model: type[RequestModel]) -> dict[str, Any]:
    """A request body's schema, as the model that validates it generates it."""
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def _model_and_parts(model: type[BaseModel]) -> dict[str, Any]:
    """A model's schema and those of the models inside it, each under its own name."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), model.__name__: schema}


def _query(model: type[RequestModel]) -> list[dict[str, Any]]:
    """A query's parameters, from the model that validates them. Empty means left out:
    clients build `?symbol=&strategy=` from blanks."""
    properties = _model(model)["properties"]
    parameters = []
    for name, schema in properties.items():
        choices = [part for part in schema.get("anyOf", [schema]) if part.get("type") != "null"]
        parameter_schema = {"anyOf": [*choices, {"const": ""}]}
        if name in model.defaults:
            parameter_schema["default"] = model.defaults[name]
        parameters.append({"name": name, "in": "query", "schema": parameter_schema})
    return parameters


def _schemas() -> dict[str, Any]:
    return {
        "Error": {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"type": "string", "description": "A stable, machine-readable code."},
                "detail": {"type": "string", "description": "For people; may change."},
                "fields": {
                    "type": "object",
                    "description": "Validation errors by field name (only on 400).",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "EffectiveState": {
            "type": "object",
            "required": ["state", "scope", "reason", "since"],
            "properties": {
                "state": {"enum": State.values},
                "scope": {
                    "type": "string",
                    "description": "The scope that decides: global, strategy:<name> or symbol:<TICKER>.",
                    "pattern": r"^(global|strategy:.+|symbol:.+)$",
                },
                "reason": {"type": "string"},
                "since": {"oneOf": [DATE_TIME, {"type": "null"}], "description": "null while ACTIVE."},
            },
        },
        "TradingStatus": {
            "allOf": [
                _ref("EffectiveState"),
                {
                    "type": "object",
                    "required": ["allowed_sides"],
                    "properties": {
                        "allowed_sides": {
                            "type": "array",
                            "items": {"enum": Side.values},
                            "description": "What the gate would accept now for this strategy and symbol.",
                        }
                    },
                },
            ]
        },
        "TradingDenied": {
            "description": "The gate refused the trade; the body names the state that decided.",
            "allOf": [
                _ref("Error"),
                _ref("EffectiveState"),
                {"type": "object", "properties": {"error": {"enum": ["trading_halted", "trading_reducing"]}}},
            ],
        },
        "TradeRequest": _model(TradeRequest),
        "Trade": {
            "type": "object",
            "required": [
                "id",
                "client_order_id",
                "symbol",
                "side",
                "quantity",
                "price",
                "strategy",
                "executed_at",
                "created_at",
            ],
            "properties": {
                "id": {"type": "integer"},
                "client_order_id": {"type": "string"},
                "symbol": SYMBOL,
                "side": {"enum": Side.values},
                "quantity": OUTPUT_DECIMAL,
                "price": OUTPUT_DECIMAL,
                "strategy": STRATEGY,
                "executed_at": DATE_TIME,
                "created_at": DATE_TIME,
            },
        },
        "DuplicateOrder": {
            "allOf": [
                _ref("Error"),
                {
                    "type": "object",
                    "required": ["trade"],
                    "properties": {"error": {"const": "duplicate_client_order_id"}, "trade": _ref("Trade")},
                },
            ]
        },
        "AnalysisRequest": _model(AnalysisRequest),
        "Analysis": {
            "type": "object",
            "required": [
                "id",
                "symbol",
                "signal",
                "confidence",
                "model_version",
                "price",
                "analyzed_at",
                "created_at",
            ],
            "properties": {
                "id": {"type": "integer"},
                "symbol": SYMBOL,
                "signal": {"enum": Signal.values},
                "confidence": OUTPUT_DECIMAL,
                "model_version": {"type": "string"},
                "price": {"oneOf": [OUTPUT_DECIMAL, {"type": "null"}]},
                "analyzed_at": DATE_TIME,
                "created_at": DATE_TIME,
            },
        },
        **_model_and_parts(AlertmanagerNotification),
        "Alert": {
            "type": "object",
            "required": [
                "fingerprint",
                "alertname",
                "status",
                "severity",
                "summary",
                "description",
                "runbook_url",
                "labels",
                "starts_at",
                "ends_at",
                "last_received_at",
            ],
            "properties": {
                "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{1,64}$"},
                "alertname": {"type": "string"},
                "status": {"enum": AlertStatus.values},
                "severity": {"type": "string"},
                "summary": {"type": "string"},
                "description": {"type": "string"},
                "runbook_url": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "starts_at": DATE_TIME,
                "ends_at": {"oneOf": [DATE_TIME, {"type": "null"}]},
                "last_received_at": DATE_TIME,
            },
        },
        "MonitoringChain": {
            "type": "object",
            "required": ["state", "last_heartbeat_at", "heartbeat_age_seconds", "heartbeat_max_age_seconds"],
            "properties": {
                "state": {"enum": ["connected", "silent", "not_connected"]},
                "last_heartbeat_at": {"oneOf": [DATE_TIME, {"type": "null"}]},
                "heartbeat_age_seconds": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
                "heartbeat_max_age_seconds": {"type": "integer", "minimum": 1},
            },
        },
    }


def _error(description: str, schema: str = "Error", headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref(schema)}}}
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


def _json_body(schema: str) -> dict[str, Any]:
    examples = {name: {"value": value} for name, value in EXAMPLES[schema].items()}
    return {"required": True, "content": {JSON: {"schema": _ref(schema), "examples": examples}}}


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
                "requestBody": _json_body("TradeRequest"),
                "responses": {
                    "201": _ok("Recorded.", _ref("Trade")),
                    "200": _ok("An identical retry: the trade recorded the first time.", _ref("Trade")),
                    **_common(body=True, unavailable="TradingStateUnavailable"),
                    "409": _error(
                        "`duplicate_client_order_id`: that id was recorded with other content (in `trade`).",
                        "DuplicateOrder",
                    ),
                    "423": _error(
                        "`trading_halted` or `trading_reducing`: the kill switch refused; nothing recorded.",
                        "TradingDenied",
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
                    "200": _ok("The most restrictive of global, strategy and symbol.", _ref("TradingStatus")),
                    **_common(body=False, unavailable="TradingStateUnavailable"),
                },
            }
        },
        "/api/v1/analyses": {
            "post": {
                "operationId": "createAnalysis",
                "summary": "Record an analysis from the ML pipeline.",
                "security": _scope(Scope.ANALYSES),
                "requestBody": _json_body("AnalysisRequest"),
                "responses": {"201": _ok("Recorded.", _ref("Analysis")), **_common(body=True)},
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
                "requestBody": _json_body("AlertmanagerNotification"),
                "responses": {
                    "200": _ok(
                        "Stored.",
                        {
                            "type": "object",
                            "required": ["stored"],
                            "properties": {"stored": {"type": "integer", "minimum": 0}},
                        },
                    ),
                    **_common(body=True),
                },
            }
        },
        "/api/v1/alerts": {
            "get": {
                "operationId": "listAlerts",
                "summary": "The alert store, newest first.",
                "security": _scope(Scope.STATUS),
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": ["firing", "resolved", "all"], "default": "firing"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                    },
                ],
                "responses": {
                    "200": _ok(
                        "Alerts, and the monitoring chain's state: whether the Watchdog heartbeat "
                        "still arrives (`silent` when older than MONITORING_HEARTBEAT_MAX_AGE_SECONDS, "
                        "`not_connected` when none ever did), so an empty list is not mistaken for "
                        "a quiet day.",
                        {
                            "type": "object",
                            "required": ["alerts", "monitoring"],
                            "properties": {
                                "alerts": {"type": "array", "items": _ref("Alert")},
                                "monitoring": _ref("MonitoringChain"),
                            },
                        },
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
