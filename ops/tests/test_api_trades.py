from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ops.api.models import ApiClient
from ops.records.models import Trade
from ops.tests.conftest import ApiTestClient, trade_payload

URL = "/api/v1/trades"


def test_it_records_a_trade_and_answers_201(api):
    response = api.post_json(URL, trade_payload())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["client_order_id"] == "ord-1"
    assert body["quantity"] == "10.00000000"
    assert body["price"] == "228.50000000"
    trade = Trade.objects.get()
    assert (trade.symbol, trade.side, trade.strategy) == ("AAPL", "buy", "momentum")
    assert trade.api_client.name == "trading-engine"


def test_it_defaults_strategy_and_executed_at(api):
    response = api.post_json(URL, trade_payload(strategy=..., client_order_id="ord-2"))
    assert response.status_code == 201
    assert response.json()["strategy"] == "default"
    assert Trade.objects.get().executed_at is not None


def test_it_accepts_json_numbers_exactly(api):
    response = api.post_json(
        URL, '{"client_order_id":"n1","symbol":"BRK.B","side":"sell","quantity":0.12345678,"price":1234567.1}'
    )
    assert response.status_code == 201, response.content
    assert Trade.objects.get().quantity == Decimal("0.12345678")


def test_an_identical_retry_answers_200_with_the_original_body(api):
    first = api.post_json(URL, trade_payload(executed_at="2026-11-27T14:30:00Z"))
    retry = api.post_json(URL, trade_payload(executed_at="2026-11-27T14:30:00+00:00"))
    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert Trade.objects.count() == 1


def test_a_retry_without_executed_at_is_still_identical(api):
    first = api.post_json(URL, trade_payload())
    retry = api.post_json(URL, trade_payload(quantity="10.000"))
    assert retry.status_code == 200
    assert retry.json() == first.json()


def test_the_same_id_with_other_content_answers_409_and_changes_nothing(api):
    api.post_json(URL, trade_payload())
    response = api.post_json(URL, trade_payload(quantity="11"))
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "duplicate_client_order_id"
    assert body["trade"]["quantity"] == "10.00000000"
    assert Trade.objects.get().quantity == Decimal("10")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer iq_not-a-real-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "other-scheme", "empty"],
)
def test_it_answers_401_without_a_valid_token(db, headers):
    response = ApiTestClient().post(
        URL, json.dumps(trade_payload()), content_type="application/json", headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Trade.objects.exists()


@pytest.mark.parametrize(
    "body",
    [b"{not json", json.dumps({"symbol": "AAPL"}).encode(), json.dumps(trade_payload(quantity="0")).encode()],
    ids=["not-json", "incomplete", "invalid"],
)
def test_a_bad_token_is_answered_before_a_bad_body(db, body):
    """The gate checks the token in its own statement, after the body; a body it never
    gets to still gets the token's answer first, as on every endpoint."""
    _, reader = ApiClient.issue("reader", "analyses,status")
    for token, status in (("iq_not-a-real-token", 401), (reader, 403)):
        response = ApiTestClient(token=token).post_json(URL, body)
        assert response.status_code == status, response.content
    assert not Trade.objects.exists()


def test_a_revoked_token_is_refused(api, api_token):
    ApiClient.objects.get().revoke()
    response = api.post_json(URL, trade_payload())
    assert response.status_code == 401
    assert not Trade.objects.exists()


def test_it_records_when_the_token_was_last_used(api):
    api.post_json(URL, trade_payload())
    assert ApiClient.objects.get().last_used_at is not None


def test_only_post_is_allowed(api):
    response = api.get_json(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"] == "method_not_allowed"


def test_a_body_over_64_kib_answers_413_and_writes_nothing(api):
    payload = trade_payload(padding="x" * (64 * 1024))
    response = api.post_json(URL, payload)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert not Trade.objects.exists()


def test_a_body_just_under_the_limit_is_parsed(api):
    # Padding that makes the body exactly 64 KiB: it reaches validation (400), not 413.
    base = json.dumps(trade_payload(padding=""))
    payload = trade_payload(padding="x" * (64 * 1024 - len(base)))
    assert len(json.dumps(payload)) == 64 * 1024
    response = api.post_json(URL, payload)
    assert response.status_code == 400
    assert response.json()["fields"] == {"padding": ["Unknown field."]}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_non_json_content_type_answers_400(api, api_token, content_type):
    response = api.generic(
        "POST",
        URL,
        json.dumps(trade_payload()),
        content_type=content_type,
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_content_type"


@pytest.mark.parametrize(
    "body",
    [
        "{",
        "not json",
        "[1, 2]",
        '"a string"',
        "null",
        '{"a": NaN}',
        '{"a": Infinity}',
        b"\xff\xfe{}",
        "[" * 50_000,
        '{"quantity": 1' + "0" * 5000 + "}",
    ],
    ids=[
        "truncated",
        "text",
        "array",
        "string",
        "null",
        "nan",
        "infinity",
        "not-utf8",
        "deeply-nested",
        "int-too-long-to-parse",
    ],
)
def test_a_body_that_is_not_a_json_object_answers_400(api, body):
    response = api.post_json(URL, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert not Trade.objects.exists()


def test_an_empty_json_body_answers_400(api, api_token):
    # The test client drops the content type of an empty body, so set it by hand.
    response = api.generic(
        "POST", URL, b"", CONTENT_TYPE="application/json", headers={"Authorization": f"Bearer {api_token}"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


MALFORMED = {
    # field: value  -> each must give 400 naming that field, and write nothing
    "quantity-negative": ("quantity", "-1"),
    "quantity-zero": ("quantity", 0),
    "quantity-huge": ("quantity", "1e40"),
    "quantity-huge-int": ("quantity", 10**30),
    "quantity-too-precise": ("quantity", "0.000000001"),
    "quantity-bool": ("quantity", True),
    "quantity-list": ("quantity", [1]),
    "quantity-object": ("quantity", {"value": 1}),
    "quantity-null": ("quantity", None),
    "quantity-text": ("quantity", "ten"),
    "quantity-nan-string": ("quantity", "NaN"),
    "quantity-infinity-string": ("quantity", "Infinity"),
    "quantity-empty": ("quantity", ""),
    "quantity-underscores": ("quantity", "1_000"),
    "quantity-arabic-digits": ("quantity", "١٢"),
    "quantity-spaces": ("quantity", " 10"),
    "price-negative": ("price", -228.5),
    "price-zero-string": ("price", "0.00"),
    "symbol-empty": ("symbol", ""),
    "symbol-lower": ("symbol", "aapl"),
    "symbol-too-long": ("symbol", "ABCDEFGHIJK"),
    "symbol-unicode": ("symbol", "ÄPPL"),
    "symbol-emoji": ("symbol", "🚀"),
    "symbol-number": ("symbol", 42),
    "symbol-nested": ("symbol", {"ticker": "AAPL"}),
    "symbol-space": ("symbol", " AAPL"),
    "side-unknown": ("side", "short"),
    "side-upper": ("side", "BUY"),
    "side-null": ("side", None),
    "client-order-id-empty": ("client_order_id", ""),
    "client-order-id-too-long": ("client_order_id", "x" * 65),
    "client-order-id-unicode": ("client_order_id", "ordé-1"),
    "client-order-id-number": ("client_order_id", 12345),
    "strategy-empty": ("strategy", ""),
    "strategy-space": ("strategy", "my strategy"),
    "strategy-too-long": ("strategy", "s" * 65),
    "executed-at-naive": ("executed_at", "2026-11-27T14:30:00"),
    "executed-at-garbage": ("executed_at", "yesterday"),
    "executed-at-number": ("executed_at", 1764253800),
    "executed-at-year-9999": ("executed_at", "9999-12-31T23:59:59-05:00"),
    "executed-at-year-1": ("executed_at", "0001-01-01T00:00:00+05:00"),
    "executed-at-last-century": ("executed_at", "1999-12-31T23:59:59Z"),
    "executed-at-next-week": ("executed_at", "2099-01-01T00:00:00Z"),
    "unknown-field": ("account", "primary"),
}


@pytest.mark.parametrize("field,value", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_answers_400_naming_the_field_and_writes_nothing(api, field, value):
    response = api.post_json(URL, trade_payload(**{field: value}))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_failed"
    assert field in body["fields"], body
    assert not Trade.objects.exists()


def test_missing_required_fields_are_all_named(api):
    response = api.post_json(URL, {})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"client_order_id", "symbol", "side", "quantity", "price"}


def test_unknown_api_paths_answer_json_404(api):
    response = api.get_json("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_an_unexpected_api_error_answers_json_500(db, settings):
    from django.test import Client

    settings.ROOT_URLCONF = "ops.tests.urls_for_errors"
    response = Client(raise_request_exception=False).get("/api/v1/explode")
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "detail": "Unexpected server error; it has been logged.",
    }


def test_tiny_quantities_are_written_out_in_plain_digits(api):
    body = api.post_json(URL, trade_payload(quantity="0.00000001")).json()
    assert body["quantity"] == "0.00000001"
