"""The answers are built by the response models (ops/api/responses.py, ops/alerts/schemas.py)
in the formats the API has always used: decimals as strings to their column's places,
date-times as isoformat() ("+00:00", not pydantic's "Z"), null where a value is absent,
`fields` only on a 400; and the alert list's query keeps its own messages."""

from __future__ import annotations

import pytest
from django.utils import timezone

from ops.alerts.models import Alert
from ops.api.models import ApiClient
from ops.records.models import Analysis, Trade
from ops.tests.conftest import ApiTestClient, trade_payload
from ops.trading import service

ALERTS = "/api/v1/alerts"


@pytest.fixture
def reader(db) -> ApiTestClient:
    return ApiTestClient(token=ApiClient.issue("reader", "status")[1])


def test_a_trade_is_answered_as_the_row_reads(api):
    body = api.post_json("/api/v1/trades", trade_payload(price="228.5")).json()
    trade = Trade.objects.get()
    assert body == {
        "id": trade.pk,
        "client_order_id": "ord-1",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "10.00000000",
        "price": "228.50000000",
        "strategy": "momentum",
        "executed_at": trade.executed_at.isoformat(),
        "created_at": trade.created_at.isoformat(),
    }
    assert body["executed_at"].endswith("+00:00") and body["created_at"].endswith("+00:00")


def test_an_analysis_keeps_four_places_and_a_missing_price_is_null(db):
    client = ApiTestClient(token=ApiClient.issue("ml", "analyses")[1])
    response = client.post_json(
        "/api/v1/analyses", {"symbol": "AAPL", "signal": "hold", "confidence": 0.5, "model_version": "v1"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["confidence"] == "0.5000" and body["price"] is None
    assert body["analyzed_at"] == Analysis.objects.get().analyzed_at.isoformat()


def test_the_gate_s_refusal_is_the_error_shape_and_the_state_that_decided(api):
    service.halt("global", reason="broker outage", actor=service.Actor.system("tests", service.HALT))
    response = api.post_json("/api/v1/trades", trade_payload())
    assert response.status_code == 423
    body = response.json()
    assert list(body) == ["error", "detail", "state", "scope", "reason", "since"]
    assert (body["error"], body["state"], body["scope"], body["reason"]) == (
        "trading_halted",
        "HALTED",
        "global",
        "broker outage",
    )
    assert body["since"].endswith("+00:00")


def test_a_conflicting_retry_names_the_recorded_trade_and_no_fields(api):
    api.post_json("/api/v1/trades", trade_payload())
    body = api.post_json("/api/v1/trades", trade_payload(quantity="11")).json()
    assert list(body) == ["error", "detail", "trade"]
    assert body["trade"]["quantity"] == "10.00000000"


def test_only_a_validation_error_names_fields(api):
    assert "fields" not in ApiTestClient().post_json("/api/v1/trades", trade_payload(), token=None).json()
    assert api.post_json("/api/v1/trades", trade_payload(symbol="aapl")).json()["fields"]["symbol"]


def test_the_status_of_an_active_scope_has_no_since(reader):
    body = reader.get_json("/api/v1/trading/status?symbol=AAPL").json()
    assert body == {
        "state": "ACTIVE",
        "scope": "global",
        "reason": "",
        "since": None,
        "allowed_sides": ["buy", "sell"],
    }


def test_an_empty_alert_list_says_the_chain_was_never_connected(reader, settings):
    assert reader.get_json(ALERTS).json() == {
        "alerts": [],
        "monitoring": {
            "state": "not_connected",
            "last_heartbeat_at": None,
            "heartbeat_age_seconds": None,
            "heartbeat_max_age_seconds": settings.MONITORING_HEARTBEAT_MAX_AGE_SECONDS,
        },
    }


def test_a_listed_alert_reads_as_its_row(reader):
    client = ApiTestClient(token=ApiClient.issue("alertmanager", "alerts")[1])
    alert = {
        "fingerprint": "ABC123",
        "status": "firing",
        "startsAt": "2026-11-27T14:30:00Z",
        "labels": {"alertname": "HighLatency", "severity": "warning"},
    }
    assert client.post_json("/api/v1/alerts/alertmanager", {"version": "4", "alerts": [alert]}).json() == {
        "stored": 1
    }
    (listed,) = reader.get_json(ALERTS).json()["alerts"]
    row = Alert.objects.get()
    assert listed["fingerprint"] == "abc123"
    assert listed["starts_at"] == "2026-11-27T14:30:00+00:00" == row.starts_at.isoformat()
    assert listed["ends_at"] is None
    assert listed["last_received_at"] == row.last_received_at.isoformat()


def test_an_answer_is_never_a_500_for_what_the_server_itself_holds(reader, settings):
    # The answer models shape what the server has; they do not judge it. A setting out of
    # the document's range, or a row written other than through the webhook, is answered.
    settings.MONITORING_HEARTBEAT_MAX_AGE_SECONDS = 0
    Alert.objects.create(fingerprint="f1", starts_at=timezone.now(), status="firing", labels={"n": 1})

    response = reader.get_json(ALERTS)

    assert response.status_code == 200
    body = response.json()
    assert body["monitoring"]["heartbeat_max_age_seconds"] == 0
    assert body["alerts"][0]["labels"] == {"n": 1}


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("?status=open", {"status": ['Must be "firing", "resolved" or "all".']}),
        ("?status=", {"status": ['Must be "firing", "resolved" or "all".']}),
        ("?limit=0", {"limit": ["Must be a whole number from 1 to 500."]}),
        ("?limit=", {"limit": ["Must be a whole number from 1 to 500."]}),
        ("?limit=+5", {"limit": ["Must be a whole number from 1 to 500."]}),
        ("?limit=1_0", {"limit": ["Must be a whole number from 1 to 500."]}),
        ("?since=1", {"since": ["Unknown parameter."]}),
        (
            "?status=x&limit=x&since=1",
            {
                "status": ['Must be "firing", "resolved" or "all".'],
                "limit": ["Must be a whole number from 1 to 500."],
                "since": ["Unknown parameter."],
            },
        ),
    ],
)
def test_the_alert_list_s_query_errors_keep_their_words(reader, query, fields):
    body = reader.get_json(ALERTS + query).json()
    assert body == {
        "error": "validation_failed",
        "detail": f"Invalid parameters: {', '.join(sorted(fields))}.",
        "fields": fields,
    }


def test_the_alert_list_takes_its_bounds(reader):
    assert reader.get_json(ALERTS + "?status=all&limit=500").status_code == 200
    assert reader.get_json(ALERTS + "?limit=001").status_code == 200
