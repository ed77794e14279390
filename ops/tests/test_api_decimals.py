"""A decimal the API accepts is stored exactly as sent, on Postgres and on the embedded
SQLite default (which keeps 15 significant digits, and so refuses more).

Found by schemathesis (test_openapi_fuzz.py): on SQLite a 20-digit price was recorded
altered, so its identical retry answered 409, and 999999999999.99999999 was read back
as 1E+12, past the column's 20 digits: the retry answered 500.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from ops.records.models import Analysis, Trade
from ops.tests.conftest import trade_payload

TRADES = "/api/v1/trades"
ANALYSES = "/api/v1/analyses"


@pytest.mark.parametrize("price", ["999999999999.99999999", "123456789012.12345678"])
def test_a_twenty_digit_price_is_kept_exactly_or_refused_and_never_altered(api, price):
    body = trade_payload(price=price)
    first = api.post_json(TRADES, body)
    if connection.vendor == "sqlite":
        assert first.status_code == 400
        assert "15 significant digits" in first.json()["fields"]["price"][0]
        assert not Trade.objects.exists()
        return
    assert first.status_code == 201
    retry = api.post_json(TRADES, body)
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert Trade.objects.get().price == Decimal(price)


@pytest.mark.parametrize("field", ["quantity", "price"])
def test_fifteen_significant_digits_are_kept_on_every_database(api, field):
    body = trade_payload(**{field: "999999999999.999"})
    first = api.post_json(TRADES, body)
    assert first.status_code == 201
    assert api.post_json(TRADES, body).status_code == 200
    assert getattr(Trade.objects.get(), field) == Decimal("999999999999.999")


def test_an_analysis_price_follows_the_same_rule(api):
    response = api.post_json(
        ANALYSES,
        {
            "symbol": "AAPL",
            "signal": "buy",
            "confidence": "0.5",
            "model_version": "v1",
            "price": "12345678.12345678",
        },
    )
    if connection.vendor == "sqlite":
        assert response.status_code == 400
        assert list(response.json()["fields"]) == ["price"]
        assert not Analysis.objects.exists()
    else:
        assert response.status_code == 201
        assert Analysis.objects.get().price == Decimal("12345678.12345678")


@pytest.mark.parametrize("price", [".180E415714058", "1E-999999999", "-1E+999999999"])
def test_extreme_exponents_are_refused_without_an_error(api, price):
    response = api.post_json(TRADES, trade_payload(price=price))
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["price"]
    assert not Trade.objects.exists()
