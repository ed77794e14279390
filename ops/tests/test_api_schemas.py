"""JsonForm.validate() cleans field by field without a bound form (it is on the trade
path of every order); these tests hold that it answers exactly as the bound form would."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django import forms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.api.errors import ApiError
from ops.api.schemas import DECIMAL_TEXT, TEXT, AnalysisForm, JsonForm, TradeForm, TradingStatusForm

# Values that reach the fields (the JSON-type check lets only text and numbers through):
# edge cases of each field, plus arbitrary text and numbers.
EDGES = [
    "",
    " ",
    "AAPL",
    "aapl",
    "BRK.B",
    "ABCDEFGHIJK",
    "buy",
    "sell",
    "hold",
    "BUY",
    "x" * 64,
    "x" * 65,
    "a b",
    "momentum",
    "mean-rev_2.0",
    "é",
    "\x00",
    "0",
    "-1",
    "1",
    "0.5",
    "1.00004",
    "0.99995",
    "1e3",
    "1E-9",
    "100.123456789",
    "1" * 19,
    "1" * 20,
    "NaN",
    "Infinity",
    "2026-11-27T14:30:00Z",
    "2026-11-27T14:30:00",
    "1999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59-14:00",
    "not a date",
    0,
    1,
    -5,
    10**30,
    Decimal("0.00000001"),
    Decimal("0.000000001"),
    Decimal("1.5E+3"),
    Decimal("-0"),
]
VALUES = st.one_of(
    st.sampled_from(EDGES),
    st.text(max_size=20),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
)
FORMS = [TradeForm, AnalysisForm, TradingStatusForm]


def passes_type_check(form_class: type[JsonForm], name: str, value: object) -> bool:
    if value == "" and not form_class.base_fields[name].required:
        return False
    if form_class.json_types[name] == TEXT:
        return isinstance(value, str)
    return not isinstance(value, str) or bool(DECIMAL_TEXT.match(value))


def via_bound_form(form_class: type[JsonForm], payload: dict) -> tuple[dict, dict]:
    """What Django's own full_clean() makes of the same values: (cleaned, errors)."""
    form = form_class(data=payload)
    if form.is_valid():
        return {name: value for name, value in form.cleaned_data.items() if value not in (None, "")}, {}
    return {}, {name: list(messages) for name, messages in form.errors.items()}


def via_validate(form_class: type[JsonForm], payload: dict) -> tuple[dict, dict]:
    try:
        return form_class.validate(payload), {}
    except ApiError as exc:
        return {}, exc.fields


@pytest.mark.parametrize("form_class", FORMS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_validate_cleans_and_refuses_exactly_as_the_bound_form(form_class, data):
    names = list(form_class.base_fields)
    # Only values the JSON-type check in front passes (text for text fields; decimal text
    # or a number for numbers; no "" for optional fields): what is left is what the fields
    # decide, which both paths must decide alike.
    payload = {}
    for name in data.draw(st.lists(st.sampled_from(names), unique=True)):
        value = data.draw(VALUES)
        if passes_type_check(form_class, name, value):
            payload[name] = value
    assert via_validate(form_class, payload) == via_bound_form(form_class, payload)


def test_a_valid_trade_is_cleaned_to_typed_values():
    cleaned = TradeForm.validate(
        {"client_order_id": "c-1", "symbol": "AAPL", "side": "buy", "quantity": "2", "price": 10}
    )
    assert cleaned == {
        "client_order_id": "c-1",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": Decimal(2),
        "price": Decimal(10),
    }


def test_confidence_is_checked_before_it_is_rounded_to_four_places():
    base = {"symbol": "AAPL", "signal": "buy", "model_version": "m1"}
    assert AnalysisForm.validate({**base, "confidence": "0.123456"})["confidence"] == Decimal("0.1235")
    with pytest.raises(ApiError) as refused:
        AnalysisForm.validate({**base, "confidence": "1.00004"})
    assert refused.value.fields == {"confidence": ["Ensure this value is less than or equal to 1."]}


def test_a_json_form_refuses_form_hooks_that_validate_would_not_run():
    with pytest.raises(TypeError, match="clean_price"):

        class _Hooked(JsonForm):
            price = forms.DecimalField()

            def clean_price(self):
                return self.cleaned_data["price"]
