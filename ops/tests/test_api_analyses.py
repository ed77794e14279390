from __future__ import annotations

from decimal import Decimal

import pytest

from ops.records.models import Analysis

URL = "/api/v1/analyses"


def analysis_payload(**overrides):
    payload = {"symbol": "NVDA", "signal": "buy", "confidence": 0.87, "model_version": "lstm-1.4"}
    payload.update(overrides)
    return payload


def test_it_records_an_analysis_and_answers_201(api):
    response = api.post_json(URL, analysis_payload(price="135.20", analyzed_at="2026-11-27T15:00:00Z"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["confidence"] == "0.8700"
    assert body["price"] == "135.20000000"
    assert Analysis.objects.get().signal == "buy"


def test_confidence_is_rounded_to_four_places(api):
    response = api.post_json(URL, analysis_payload(confidence=0.123456789))
    assert response.status_code == 201
    assert Analysis.objects.get().confidence == Decimal("0.1235")


@pytest.mark.parametrize("confidence", [0, 1, "0.5"])
def test_confidence_bounds_are_inclusive(api, confidence):
    assert api.post_json(URL, analysis_payload(confidence=confidence)).status_code == 201


@pytest.mark.parametrize(
    "field,value",
    [
        ("confidence", 1.0001),
        ("confidence", -0.1),
        ("confidence", "high"),
        ("confidence", None),
        ("confidence", True),
        ("signal", "strong_buy"),
        ("signal", ""),
        ("symbol", "nvda"),
        ("model_version", ""),
        ("model_version", "v 1"),
        ("model_version", ["v1"]),
        ("price", 0),
        ("price", "-1"),
        ("analyzed_at", "2026-11-27 15:00"),
        ("extra", 1),
    ],
)
def test_malformed_analyses_answer_400_and_write_nothing(api, field, value):
    response = api.post_json(URL, analysis_payload(**{field: value}))
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert not Analysis.objects.exists()


def test_optional_price_may_be_null(api):
    assert api.post_json(URL, analysis_payload(price=None)).status_code == 201
    assert Analysis.objects.get().price is None


def test_analyses_need_a_token(api):
    response = api.post_json(URL, analysis_payload(), token=None)
    assert response.status_code == 401
    assert not Analysis.objects.exists()
