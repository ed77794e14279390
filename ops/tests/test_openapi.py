"""The OpenAPI document: valid OpenAPI 3.1, served without a token, naming exactly the
URLconf's /api/v1 routes with their methods and scopes, and every response it documents
is one the code really gives, in the documented shape.

schemathesis against the live server is in test_openapi_fuzz.py.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from ops.api.models import ApiClient, Scope
from ops.openapi import SECURITY_SCHEME, document
from ops.tests.conftest import ApiTestClient, trade_payload, unreachable_database
from ops.trading import service

URL = "/api/v1/openapi.json"


def test_the_document_is_valid_openapi_3_1():
    validate(document(), cls=OpenAPIV31SpecValidator)


def test_the_validator_would_notice_a_broken_document():
    broken = copy.deepcopy(document())
    # A query parameter that does not say where it goes ("in" is required).
    del broken["paths"]["/api/v1/alerts"]["get"]["parameters"][0]["in"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_it_is_served_as_json_without_a_token(db):
    response = Client().get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == json.loads(json.dumps(document()))


def test_it_answers_other_methods_with_the_api_s_405(db):
    response = Client().post(URL, "{}", content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["error"] == "method_not_allowed"


def test_it_tells_the_body_limit_that_is_configured(db, settings):
    settings.API_MAX_BODY_BYTES = 1234
    assert (
        "1234 bytes" in Client().get(URL).json()["components"]["responses"]["PayloadTooLarge"]["description"]
    )


def api_routes() -> dict[str, Callable]:
    """Every /api/v1 route of the URLconf, as an OpenAPI path, and its view."""
    found: dict[str, Callable] = {}

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
                found["/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)] = pattern.callback

    walk(get_resolver().url_patterns, "")
    return found


def test_every_api_route_is_documented_and_nothing_else():
    assert sorted(document()["paths"]) == sorted(api_routes())


@pytest.mark.parametrize("path", sorted(api_routes()))
def test_each_route_documents_the_methods_and_scope_its_view_enforces(path):
    view = api_routes()[path]
    operations = document()["paths"][path]
    assert sorted(method.upper() for method in operations) == sorted(view.api_methods)
    for operation in operations.values():
        scopes = [scope for requirement in operation["security"] for scope in requirement[SECURITY_SCHEME]]
        assert scopes == ([view.api_scope] if view.api_scope else [])


# --- every documented response is real ---------------------------------------------


def documented_responses() -> list[tuple[str, str, str]]:
    doc = document()
    return [
        (path, method, status)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        for status in operation["responses"]
    ]


def assert_matches_document(path: str, method: str, response) -> None:
    doc = document()
    spec = doc["paths"][path][method]["responses"].get(str(response.status_code))
    assert spec is not None, f"{method.upper()} {path} answered {response.status_code}, which is undocumented"
    if "$ref" in spec:
        spec = doc["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
    media = spec["content"]["application/json"]
    assert response["Content-Type"] == "application/json"
    # The components travel with the schema so that its #/components/... refs resolve.
    schema = {**media["schema"], "components": doc["components"]}
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(response.json())
    for name, header in spec.get("headers", {}).items():
        assert response.get(name) == header["schema"]["const"]


def token(*scopes: str) -> str:
    return ApiClient.issue("client-" + "-".join(scopes), scopes=",".join(scopes))[1]


def call(path: str, method: str, token: str | None, body: Any = None, query: str = "", **extra):
    client = ApiTestClient(token=token)
    if method == "get":
        return client.get_json(path + query, **extra)
    return client.post_json(path, body, **extra)


ALERT = {
    "fingerprint": "abc123",
    "status": "firing",
    "startsAt": "2026-11-27T14:30:00Z",
    "labels": {"alertname": "HighLatency", "severity": "warning"},
}
ANALYSIS = {"symbol": "AAPL", "signal": "buy", "confidence": "0.5", "model_version": "v1"}
BODIES = {
    "/api/v1/trades": trade_payload(),
    "/api/v1/analyses": ANALYSIS,
    "/api/v1/alerts/alertmanager": {"version": "4", "alerts": [ALERT]},
}
SCOPE_OF = {
    "/api/v1/trades": Scope.TRADES,
    "/api/v1/analyses": Scope.ANALYSES,
    "/api/v1/alerts/alertmanager": Scope.ALERTS,
    "/api/v1/trading/status": Scope.STATUS,
    "/api/v1/alerts": Scope.STATUS,
}
INVALID = {
    "/api/v1/trades": {"body": trade_payload(symbol="aapl")},
    "/api/v1/analyses": {"body": {**ANALYSIS, "confidence": 2}},
    "/api/v1/alerts/alertmanager": {"body": {"version": "3", "alerts": []}},
    "/api/v1/trading/status": {"query": "?symbol=aapl"},
    "/api/v1/alerts": {"query": "?limit=501"},
}


def scenario(path: str, method: str, status: str):
    """Make the code give `status` on that operation, the way a client would meet it."""
    scope = SCOPE_OF.get(path)
    body = BODIES.get(path)
    mine = token(scope) if scope else None
    if status in ("200", "201") and path == "/api/v1/trades":
        first = call(path, method, mine, body)
        return first if status == "201" else call(path, method, mine, body)
    if status in ("200", "201"):
        if path == "/api/v1/alerts":
            call(
                "/api/v1/alerts/alertmanager",
                "post",
                token(Scope.ALERTS),
                BODIES["/api/v1/alerts/alertmanager"],
            )
        return call(path, method, mine, body)
    if status == "400":
        return call(path, method, mine, INVALID[path].get("body"), INVALID[path].get("query", ""))
    if status == "401":
        return call(path, method, None, body)
    if status == "403":
        other = next(s for s in Scope.values if s != scope)
        return call(path, method, token(other), body)
    if status == "409":
        call(path, method, mine, body)
        return call(path, method, mine, {**body, "quantity": "11"})
    if status == "413":
        return call(path, method, mine, {"padding": "x" * (64 * 1024)})
    if status == "423":
        service.halt("global", reason="broker outage", actor=service.Actor.system("tests", service.HALT))
        return call(path, method, mine, body)
    if status == "503":
        with unreachable_database():
            return call(path, method, mine, body)
    raise AssertionError(f"no scenario gives {status} on {method.upper()} {path}: is it documented wrongly?")


@pytest.mark.parametrize(
    ("path", "method", "status"), [case for case in documented_responses() if case[2] != "503"]
)
def test_every_documented_response_is_real_and_has_the_documented_shape(db, path, method, status):
    response = scenario(path, method, status)
    assert response.status_code == int(status), response.content
    assert_matches_document(path, method, response)


# Apart: closing the connection (the database going away) needs a transactional test.
@pytest.mark.parametrize(
    ("path", "method", "status"), [case for case in documented_responses() if case[2] == "503"]
)
def test_every_documented_503_is_real_and_has_the_documented_shape(transactional_db, path, method, status):
    response = scenario(path, method, status)
    assert response.status_code == 503, response.content
    assert_matches_document(path, method, response)
