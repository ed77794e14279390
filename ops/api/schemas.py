"""Input validation for the JSON API: Django forms behind a strict JSON-type check.

Forms coerce whatever they are given to text first, so `true`, `[1]` or `{"a": 1}`
could slip through as strings; the type check in front of them rejects those.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.utils import timezone

from ops.api.errors import ApiError
from ops.records.models import MONEY, Side, Signal
from ops.validators import storable_decimal, validate_strategy, validate_symbol

PRINTABLE_VALIDATOR = RegexValidator(r"\A[\x21-\x7e]{1,64}\Z", "1–64 printable ASCII characters, no spaces.")

# Decimal() alone also takes "1_000", "NaN" and non-ASCII digits; a price must not.
DECIMAL_TEXT = re.compile(r"\A[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z", re.ASCII)
TEXT = (str,)
NUMBER = (str, int, Decimal)  # a JSON number or a decimal string


def _positive(value: Decimal) -> None:
    if value <= 0:
        raise ValidationError("Must be greater than 0.")


class AwareDateTimeField(forms.Field):
    """ISO 8601 with an explicit offset: a trade time without one is ambiguous.

    Bounded to 2000-01-01 .. now + 1 day (clock skew): beyond that it is a client bug,
    and a time near year 1 or 9999 would even overflow once converted to UTC.
    """

    EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
    MAX_SKEW = timedelta(days=1)

    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError("Enter an ISO 8601 date-time, e.g. 2026-11-27T14:30:00Z.") from None
        if parsed.tzinfo is None:
            raise ValidationError("Include a UTC offset, e.g. 'Z' or '+00:00'.")
        try:
            in_utc = parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Out of range.") from None
        latest = timezone.now() + self.MAX_SKEW
        if not self.EARLIEST <= in_utc <= latest:
            raise ValidationError(f"Must lie between {self.EARLIEST:%Y-%m-%d} and {latest:%Y-%m-%dT%H:%M}Z.")
        return in_utc


class FourPlacesDecimalField(forms.DecimalField):
    def clean(self, value: Any) -> Decimal | None:
        # Models emit floats with many digits; four places is what is stored. Rounded
        # after the checks, so 1.00004 is refused as above 1, not rounded into range.
        value = super().clean(value)
        return None if value is None else value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)


class JsonForm(forms.Form):
    """A form fed from a JSON object; json_types says which JSON types each field takes."""

    json_types: dict[str, tuple[type, ...]] = {}

    @classmethod
    def validate(cls, payload: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        data: dict[str, Any] = {}
        for name, value in payload.items():
            field = cls.base_fields.get(name)
            if field is None:
                errors[name] = ["Unknown field."]
            elif value is None:
                if field.required:
                    errors[name] = ["Must not be null."]
            elif isinstance(value, bool) or not isinstance(value, cls.json_types[name]):
                expected = "a string" if cls.json_types[name] == TEXT else "a number or a decimal string"
                errors[name] = [f"Must be {expected}, not {type(value).__name__}."]
            elif isinstance(value, str) and cls.json_types[name] == NUMBER and not DECIMAL_TEXT.match(value):
                errors[name] = ['Must be a decimal number in ASCII digits, e.g. "10" or "228.50".']
            elif value == "" and not field.required:
                errors[name] = ["Must not be empty; leave the field out for the default."]
            else:
                data[name] = value
        # Each field cleans its own value, as a bound form's full_clean() would, but
        # without the form instance: building one deep-copies every field and wraps each
        # in a BoundField, which cost 0.9M of the trade request's instructions (P3 in
        # docs/benchmarks.md). Hence no clean_<field>() or clean() hooks here
        # (__init_subclass__ refuses them): a field that needs more overrides clean().
        cleaned: dict[str, Any] = {}
        for name, field in cls.base_fields.items():
            if name in errors:
                continue
            try:
                cleaned[name] = field.clean(data.get(name))
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            names = ", ".join(sorted(errors))
            raise ApiError(400, "validation_failed", f"Invalid fields: {names}.", fields=errors)
        return {name: value for name, value in cleaned.items() if value not in (None, "")}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hooks = sorted(name for name in vars(cls) if name.startswith("clean"))
        if hooks:
            raise TypeError(f"{cls.__name__}: validate() runs no form hooks ({', '.join(hooks)}).")


class TradeForm(JsonForm):
    json_types = {
        "client_order_id": TEXT,
        "symbol": TEXT,
        "side": TEXT,
        "quantity": NUMBER,
        "price": NUMBER,
        "strategy": TEXT,
        "executed_at": TEXT,
    }

    client_order_id = forms.CharField(
        min_length=1, max_length=64, strip=False, validators=[PRINTABLE_VALIDATOR]
    )
    symbol = forms.CharField(strip=False, validators=[validate_symbol])
    side = forms.ChoiceField(choices=Side.choices)
    quantity = forms.DecimalField(**MONEY, validators=[_positive, storable_decimal])
    price = forms.DecimalField(**MONEY, validators=[_positive, storable_decimal])
    strategy = forms.CharField(required=False, strip=False, validators=[validate_strategy])
    executed_at = AwareDateTimeField(required=False)


class AnalysisForm(JsonForm):
    json_types = {
        "symbol": TEXT,
        "signal": TEXT,
        "confidence": NUMBER,
        "model_version": TEXT,
        "price": NUMBER,
        "analyzed_at": TEXT,
    }

    symbol = forms.CharField(strip=False, validators=[validate_symbol])
    signal = forms.ChoiceField(choices=Signal.choices)
    confidence = FourPlacesDecimalField(validators=[MinValueValidator(0), MaxValueValidator(1)])
    model_version = forms.CharField(strip=False, validators=[PRINTABLE_VALIDATOR])
    price = forms.DecimalField(**MONEY, required=False, validators=[_positive, storable_decimal])
    analyzed_at = AwareDateTimeField(required=False)


class TradingStatusForm(JsonForm):
    json_types = {"symbol": TEXT, "strategy": TEXT}

    symbol = forms.CharField(required=False, strip=False, validators=[validate_symbol])
    strategy = forms.CharField(required=False, strip=False, validators=[validate_strategy])
