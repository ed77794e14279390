"""The request models are the API's one contract: they validate every request and the
OpenAPI document is generated from them. Where the document needs a pattern to say what
a check says (decimal strings), these tests hold that the pattern allows exactly what the
model accepts, on the database in use (SQLite keeps 15 significant digits)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ops.api.errors import ApiError
from ops.api.schemas import TradeRequest
from ops.openapi import document

TRADE = {"client_order_id": "c-1", "symbol": "AAPL", "side": "buy", "quantity": "1"}

# Decimal text near the edges: zeros, signs, 12/13 whole digits, 8/9 places, trailing
# zeros past the eighth place, 15/16 significant digits, exponents, junk.
DECIMAL_TEXT = st.from_regex(r"\A[+-]?[0-9]{0,14}(\.[0-9]{0,10})?([eE][+-]?[0-9])?\Z").filter(bool)
EDGES = [
    "0",
    "-1",
    "+1",
    "0.0",
    ".5",
    "5.",
    "00001.5",
    "1.500000000",
    "0.00000001",
    "0.000000001",
    "999999999999",
    "1000000000000",
    "999999999999.99999999",
    "123456789012345",
    "1234567.12345678",
    "12345678.12345678",
    "1e3",
    " 1",
    "1_0",
    "NaN",
    "٣",
]


def money_pattern() -> re.Pattern[str]:
    schema = document()["components"]["schemas"]["TradeRequest"]["properties"]["price"]
    (string,) = [part for part in schema["oneOf"] if part["type"] == "string"]
    # ECMA-262 and Python read this pattern alike: no lookaround, ^/$ without flags.
    return re.compile(string["pattern"].replace("$", r"\Z"))


def accepted(value: object) -> bool:
    try:
        TradeRequest.validate({**TRADE, "price": value})
    except ApiError as exc:
        assert list(exc.fields) == ["price"], exc.fields
        return False
    return True


@pytest.mark.django_db
@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.sampled_from(EDGES), DECIMAL_TEXT, st.text(max_size=12)))
def test_the_document_s_money_pattern_allows_exactly_what_the_model_accepts(text):
    assert bool(money_pattern().match(text)) == accepted(text), text


@pytest.mark.django_db
def test_zero_and_negatives_are_refused_by_the_document_as_by_the_server():
    pattern = money_pattern()
    for text in ("0", "0.000", "-5", "-0.1"):
        assert not pattern.match(text) and not accepted(text)


@pytest.mark.django_db
@given(value=st.decimals(min_value=Decimal("1e-10"), max_value=Decimal("1e13"), places=None))
@example(Decimal("999999999999.9998"))
@example(Decimal("1.5E+3"))
@settings(max_examples=200, deadline=None)
def test_the_document_s_money_numbers_allow_exactly_what_the_model_accepts(value):
    """A JSON number: the document's ranges and multipleOf steps, in exact decimal
    arithmetic (what JSON Schema means by them), against the model."""
    schema = document()["components"]["schemas"]["TradeRequest"]["properties"]["price"]
    numbers = [part for part in schema["oneOf"] if part["type"] == "number"]

    def allows(part: dict) -> bool:
        low, high = part.get("exclusiveMinimum"), part["exclusiveMaximum"]
        above = value > low if low is not None else value >= part["minimum"]
        step = Decimal(repr(part["multipleOf"]))
        return above and value < high and value % step == 0

    assert any(map(allows, numbers)) == accepted(value), value


@pytest.mark.django_db
def test_errors_keep_the_api_s_messages():
    with pytest.raises(ApiError) as refused:
        TradeRequest.validate({**TRADE, "price": True, "strategy": "__drill__", "padding": 1, "symbol": None})
    assert refused.value.status == 400 and refused.value.code == "validation_failed"
    assert refused.value.fields == {
        "symbol": ["Must not be null."],
        "price": ["Must be a number or a decimal string, not bool."],
        "strategy": ["'__drill__' is reserved for the kill-switch drill; real orders cannot use it."],
        "padding": ["Unknown field."],
    }


def test_a_valid_trade_is_cleaned_to_typed_values(db):
    cleaned = TradeRequest.validate({**TRADE, "price": 10, "strategy": None})
    assert cleaned == {
        "client_order_id": "c-1",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": Decimal(1),
        "price": Decimal(10),
    }
