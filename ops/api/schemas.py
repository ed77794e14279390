"""The API's request models: one definition that validates every request and that the
OpenAPI document is generated from (ops/openapi.py; the answers are in responses.py).

pydantic v2 (its Rust core): each constraint is declared once, on the field, and both
the check and the JSON Schema come from it. Where JSON Schema needs a pattern to say
what the check says (a decimal string), the pattern is built from the same constants
and the check applies that very pattern, so the two cannot part.

Errors keep the API's shape: {"fields": {name: [message, ...]}} with the messages the
API has always given (ERROR_MESSAGES translates pydantic's error types).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, ClassVar, Literal

from django.db import connection
from django.http import QueryDict
from django.utils import timezone
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from ops.api.errors import ApiError
from ops.records.models import MONEY, Side, Signal
from ops.validators import (
    DRILL_STRATEGY,
    DRILL_STRATEGY_MESSAGE,
    SQLITE_SIGNIFICANT_DIGITS,
    STRATEGY_MESSAGE,
    STRATEGY_PATTERN,
    SYMBOL_MESSAGE,
    SYMBOL_PATTERN,
)


def ecma(pattern: str) -> str:
    # Python's \A and \Z are "start/end of the whole string"; in ECMA-262 (JSON Schema)
    # and in pydantic's Rust regex, without the m flag, ^ and $ mean exactly that.
    return pattern.replace(r"\A", "^").replace(r"\Z", "$")


PRINTABLE_PATTERN = r"^[\x21-\x7e]{1,64}$"
PRINTABLE_MESSAGE = "1–64 printable ASCII characters, no spaces."

WHOLE_DIGITS = MONEY["max_digits"] - MONEY["decimal_places"]
PLACES = MONEY["decimal_places"]


def positive_decimal_pattern(whole: int, places: int) -> str:
    """A decimal string in plain notation, greater than 0, with at most `whole` digits
    before the point (leading zeros aside) and `places` after it (trailing zeros aside:
    1.500000000 is 1.5). No lookaround: JSON Schema's ECMA regexes and pydantic's Rust
    regex read it alike. Each alternative puts the first non-zero digit somewhere."""
    integer = rf"0*[1-9][0-9]{{0,{whole - 1}}}(\.[0-9]{{0,{places}}}0*)?"
    fraction = "|".join(rf"0{{{k}}}[1-9][0-9]{{0,{places - 1 - k}}}" for k in range(places))
    return rf"^\+?({integer}|0*\.({fraction})0*)$"


MONEY_STRING_PATTERN = positive_decimal_pattern(WHOLE_DIGITS, PLACES)
# Plain notation, any value: the syntax a decimal string must have before its value is
# judged (so "0" is "must be greater than 0", not a syntax error).
DECIMAL_STRING_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
_DECIMAL_STRING = re.compile(DECIMAL_STRING_PATTERN, re.ASCII)

ERROR_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field.",
    "greater_than": "Must be greater than 0.",
    "greater_than_equal": "Ensure this value is greater than or equal to {ge}.",
    "less_than_equal": "Ensure this value is less than or equal to {le}.",
    "decimal_max_digits": "Ensure that there are no more than {max_digits} digits in total.",
    "decimal_max_places": "Ensure that there are no more than {decimal_places} decimal places.",
    "decimal_whole_digits": (
        "Ensure that there are no more than {whole_digits} digits before the decimal point."
    ),
    "literal_error": "Select a valid choice. {input} is not one of the available choices.",
    "finite_number": "Enter a number.",
}


def _decimal_text(value: Any) -> Any:
    # A JSON number arrives as int or Decimal (parse_float=Decimal); text must be a plain
    # decimal in ASCII digits (Decimal() alone also takes "1_000", " 1", "NaN", "1e3").
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PydanticCustomError(
            "json_type", "Must be a number or a decimal string, not {kind}.", {"kind": type(value).__name__}
        )
    if isinstance(value, str) and not _DECIMAL_STRING.match(value):
        raise PydanticCustomError(
            "decimal_text", 'Must be a decimal number in ASCII digits, e.g. "10" or "228.50".'
        )
    return value


def _storable(value: Decimal) -> Decimal:
    # SQLite, the embedded default, keeps 15 significant digits of a decimal column
    # (ops.validators.storable_decimal); the document served on SQLite says so too.
    significant = "".join(map(str, value.as_tuple().digits)).strip("0")
    if connection.vendor == "sqlite" and len(significant) > SQLITE_SIGNIFICANT_DIGITS:
        raise PydanticCustomError(
            "not_storable",
            f"The embedded SQLite database keeps {SQLITE_SIGNIFICANT_DIGITS} significant digits; "
            "this value would be stored altered (Postgres keeps all of them).",
        )
    return value


def _not_reserved(value: str) -> str:
    if value == DRILL_STRATEGY:
        raise PydanticCustomError("reserved_strategy", DRILL_STRATEGY_MESSAGE)
    return value


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_SKEW = timedelta(days=1)


def _aware_datetime(value: Any) -> datetime:
    """ISO 8601 with an explicit offset: a trade time without one is ambiguous.

    Bounded to 2000-01-01 .. now + 1 day (clock skew): beyond that it is a client bug,
    and a time near year 1 or 9999 would even overflow once converted to UTC.
    """
    if not isinstance(value, str):
        raise PydanticCustomError(
            "json_type", "Must be a string, not {kind}.", {"kind": type(value).__name__}
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError(
            "date_time", "Enter an ISO 8601 date-time, e.g. 2026-11-27T14:30:00Z."
        ) from None
    if parsed.tzinfo is None:
        raise PydanticCustomError("date_time", "Include a UTC offset, e.g. 'Z' or '+00:00'.")
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("date_time", "Out of range.") from None
    latest = timezone.now() + MAX_SKEW
    if not EARLIEST <= in_utc <= latest:
        raise PydanticCustomError(
            "date_time", f"Must lie between {EARLIEST:%Y-%m-%d} and {latest:%Y-%m-%dT%H:%M}Z."
        )
    return in_utc


def _text(pattern: str, message: str, **schema: Any) -> Any:
    def check(value: str) -> str:
        if not compiled.match(value):
            raise PydanticCustomError("pattern", message)
        return value

    # Python's re, not a pydantic pattern constraint: the message is the field's own,
    # and the symbol and strategy patterns are the models' (\A..\Z, for Postgres too).
    compiled = re.compile(pattern)
    return Annotated[
        str,
        Field(strict=True, json_schema_extra={"pattern": ecma(pattern), **schema}),
        AfterValidator(check),
    ]


# What a symbol and a strategy look like, for the answers that echo them too.
SYMBOL_SCHEMA = {"pattern": ecma(SYMBOL_PATTERN), "examples": ["AAPL", "BRK.B"]}
STRATEGY_SCHEMA = {"pattern": ecma(STRATEGY_PATTERN), "examples": ["momentum"]}

Symbol = _text(SYMBOL_PATTERN, SYMBOL_MESSAGE, examples=SYMBOL_SCHEMA["examples"])
Strategy = Annotated[
    _text(STRATEGY_PATTERN, STRATEGY_MESSAGE, examples=STRATEGY_SCHEMA["examples"]),
    # Reserved for the kill-switch drill's own scope: real orders naming it get a 400.
    Field(json_schema_extra={"not": {"const": DRILL_STRATEGY}}),
    AfterValidator(_not_reserved),
]
PrintableId = _text(PRINTABLE_PATTERN, PRINTABLE_MESSAGE)


class DateTimeSchema:
    """JSON Schema cannot bound a date-time, and the server's window moves with the
    clock: the document names whole years inside it (2001 to last year, from the day it
    is served), so every time it allows the server takes, whatever the offset."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        years = "|".join(str(year) for year in range(EARLIEST.year + 1, timezone.now().year))
        pattern = (
            rf"^({years})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
            r"(\.[0-9]{3}|\.[0-9]{6})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])$"
        )
        return {"type": "string", "format": "date-time", "pattern": pattern}


DateTime = Annotated[datetime, PlainValidator(_aware_datetime), DateTimeSchema()]


def positive_decimal_pattern_sqlite(whole: int, places: int, significant: int) -> str:
    """As positive_decimal_pattern, and at most `significant` digits from the first
    non-zero one to the last (what SQLite keeps): per count of digits before the point,
    the digits after it that may still follow."""
    integer = "|".join(
        rf"0*[1-9][0-9]{{{n - 1}}}(\.[0-9]{{0,{min(places, significant - n)}}}0*)?"
        for n in range(1, whole + 1)
    )
    fraction = "|".join(rf"0{{{k}}}[1-9][0-9]{{0,{places - 1 - k}}}" for k in range(places))
    return rf"^\+?({integer}|0*\.({fraction})0*)$"


class MoneySchema:
    """The JSON Schema of a money field, for the database the document is served from:
    the embedded SQLite keeps fewer digits than Postgres, and its document says so."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        sqlite = connection.vendor == "sqlite"
        note = (
            f" The embedded SQLite database keeps only {SQLITE_SIGNIFICANT_DIGITS} significant digits and "
            "refuses a longer value (Postgres keeps all of them)."
        )
        pattern = (
            positive_decimal_pattern_sqlite(WHOLE_DIGITS, PLACES, SQLITE_SIGNIFICANT_DIGITS)
            if sqlite
            else MONEY_STRING_PATTERN
        )
        return {
            "description": (
                f"{self.description} A JSON number or a decimal string, greater than 0, at most "
                f"{WHOLE_DIGITS} digits before the point and {PLACES} after it.{note if sqlite else ''}"
            ),
            "oneOf": [*money_numbers(sqlite), {"type": "string", "pattern": pattern}],
        }


def money_numbers(sqlite: bool) -> list[dict[str, Any]]:
    """A money JSON number: with at most PLACES decimals it is exactly a multiple of
    10^-PLACES. On SQLite, each power of ten beyond 10^(SIGNIFICANT - PLACES) leaves room
    for one decimal fewer, so the document names each such range with its own step."""
    unbounded = WHOLE_DIGITS if not sqlite else SQLITE_SIGNIFICANT_DIGITS - PLACES
    ranges = [{"exclusiveMinimum": 0, "exclusiveMaximum": 10**unbounded, "multipleOf": 10.0**-PLACES}]
    for power in range(unbounded, WHOLE_DIGITS):
        step = 10.0 ** -(SQLITE_SIGNIFICANT_DIGITS - power - 1)
        ranges.append({"minimum": 10**power, "exclusiveMaximum": 10 ** (power + 1), "multipleOf": step})
    return [{"type": "number", **bounds} for bounds in ranges]


def Money(description: str) -> Any:
    return Annotated[
        Decimal,
        BeforeValidator(_decimal_text),
        Field(gt=0, max_digits=MONEY["max_digits"], decimal_places=PLACES, allow_inf_nan=False),
        AfterValidator(_storable),
        MoneySchema(description),
    ]


def _four_places(value: Decimal) -> Decimal:
    # Models emit floats with many digits; four places is what is stored. Rounded after
    # the checks, so 1.00004 is refused as above 1, not rounded into range.
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)


# From 0 to 1 in plain notation: 0.x, 1 with zeros after the point, and minus zero.
CONFIDENCE_STRING_PATTERN = r"^(\+?(0+(\.[0-9]*)?|0*\.[0-9]+|0*1(\.0*)?)|-(0+(\.0*)?|0*\.0+))$"
Confidence = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    Field(ge=0, le=1, allow_inf_nan=False),
    AfterValidator(_four_places),
    WithJsonSchema(
        {
            "description": "From 0 to 1; stored to four places.",
            "oneOf": [
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "string", "pattern": CONFIDENCE_STRING_PATTERN},
            ],
        }
    ),
]


def _optional(kind: Any, description: str) -> Any:
    # The API treats null in an optional field as "left out" (the default applies).
    return Annotated[kind | None, Field(default=None, description=description)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, defer_build=False)

    # What a left-out field means, where the view supplies it (for the document).
    defaults: ClassVar[dict[str, str]] = {}
    # The 400's detail names the bad fields after this; `messages` are the model's own
    # wording for an error type, over ERROR_MESSAGES.
    invalid: ClassVar[str] = "Invalid fields"
    messages: ClassVar[dict[str, str]] = {}

    @classmethod
    def validate(cls, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload's fields, typed; or ApiError 400 naming every bad field."""
        try:
            model = cls.model_validate(payload)
        except ValidationError as exc:
            errors = fields_of(exc, cls.messages)
            raise ApiError(
                400, "validation_failed", f"{cls.invalid}: {', '.join(sorted(errors))}.", fields=errors
            ) from None
        # The fields as validated, without model_dump()'s serialisation pass (this is on
        # the trade path of every order).
        return {name: value for name, value in model.__dict__.items() if value is not None}


class QueryModel(RequestModel):
    """A query string's parameters (the last value of a repeated one, as Django reads it)."""

    # Clients build `?symbol=&strategy=` from blanks: where this is set, an empty value
    # means left out (and the document says so).
    blank_is_absent: ClassVar[bool] = False

    @classmethod
    def validate_query(cls, query: QueryDict) -> dict[str, Any]:
        return cls.validate(
            {name: value for name, value in query.items() if not (cls.blank_is_absent and value == "")}
        )


def fields_of(exc: ValidationError, messages: dict[str, str] | None = None) -> dict[str, list[str]]:
    """pydantic's errors as the API's {"field": ["message", ...]}."""
    messages = {**ERROR_MESSAGES, **(messages or {})}
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"][:1]) or "__all__"
        kind = error["type"]
        value = error.get("input")
        if value is None and kind not in ("missing", "extra_forbidden"):
            message = "Must not be null."
        elif kind in ("string_type", "str_type"):
            message = f"Must be a string, not {type(value).__name__}."
        elif kind in messages:
            message = messages[kind].format(input=value, **error.get("ctx", {}))
        else:
            message = error["msg"]
        errors.setdefault(name, []).append(message)
    return errors


class TradeRequest(RequestModel):
    client_order_id: Annotated[
        PrintableId, Field(description="The idempotency key: 1–64 printable ASCII characters, no spaces.")
    ]
    symbol: Symbol
    side: Literal[tuple(Side.values)]  # type: ignore[valid-type]
    quantity: Money("How many.")
    price: Money("Per unit.")
    strategy: _optional(Strategy, "Default: default.")
    executed_at: _optional(DateTime, "With a UTC offset; from 2000-01-01 to one day ahead. Default: now.")


class AnalysisRequest(RequestModel):
    symbol: Symbol
    signal: Literal[tuple(Signal.values)]  # type: ignore[valid-type]
    confidence: Confidence
    model_version: PrintableId
    price: _optional(Money("The price the model saw."), "Optional.")
    analyzed_at: _optional(DateTime, "With a UTC offset; from 2000-01-01 to one day ahead. Default: now.")


class TradingStatusQuery(QueryModel):
    defaults = {"strategy": "default"}
    blank_is_absent = True

    symbol: Symbol | None = None
    strategy: Strategy | None = None
