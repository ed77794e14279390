"""What a symbol and a strategy name may look like: the one definition of both.

The models attach these validators to their fields (so the admin and `full_clean`
enforce them), the models' CHECK constraints use the same patterns (so a raw
`objects.create()` or a shell cannot bypass them), and the API forms and scope parser
reuse them. A second copy of a pattern is how `symbol:aapl` ended up unhaltable.

The patterns are written so that Python's `re` (the forms, and SQLite's REGEXP, which
Django implements with `re.search`) and PostgreSQL's `~` read them alike: `\\A` and
`\\Z` anchor the whole string in both, where `$` would let a trailing newline through.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection

SYMBOL_PATTERN = r"\A[A-Z.]{1,10}\Z"
STRATEGY_PATTERN = r"\A[A-Za-z0-9_.-]{1,64}\Z"

SYMBOL_MESSAGE = "1–10 characters of A–Z and '.', upper case."
STRATEGY_MESSAGE = "1–64 characters of letters, digits, '_', '.' and '-'."

# The kill-switch drill's strategy (ops.drill): a valid name, so its scope parses and the
# gate reads it like any other, but reserved, so no real order (API, task, admin) can
# carry it and a drill's halt can never stop real trading.
DRILL_STRATEGY = "__drill__"
DRILL_STRATEGY_MESSAGE = (
    f"'{DRILL_STRATEGY}' is reserved for the kill-switch drill; real orders cannot use it."
)

_SYMBOL = re.compile(SYMBOL_PATTERN)
_STRATEGY = re.compile(STRATEGY_PATTERN)


def is_symbol(text: str) -> bool:
    return bool(_SYMBOL.match(text))


def is_strategy(text: str) -> bool:
    return bool(_STRATEGY.match(text))


# Plain functions rather than RegexValidator instances: migrations then refer to them by
# name instead of freezing a copy of the pattern.
def validate_symbol(value: str) -> None:
    if not isinstance(value, str) or not is_symbol(value):
        raise ValidationError(SYMBOL_MESSAGE, code="invalid_symbol")


def validate_strategy(value: str) -> None:
    if not isinstance(value, str) or not is_strategy(value):
        raise ValidationError(STRATEGY_MESSAGE, code="invalid_strategy")
    if value == DRILL_STRATEGY:
        raise ValidationError(DRILL_STRATEGY_MESSAGE, code="reserved_strategy")


# SQLite, the embedded default, stores a decimal column as a double and keeps only its
# first 15 significant digits (sqlite.org/datatype3.html, "Type Affinity"). A longer value
# would be recorded altered: its identical retry would no longer match (409 instead of
# 200), and one that rounds past the column's precision could not even be read back (500).
SQLITE_SIGNIFICANT_DIGITS = 15


def storable_decimal(value: Decimal) -> None:
    # Counted from the digits, not with normalize(): that is arithmetic, and overflows on
    # an exponent like ".1E415714058" (which the digit-count validator refuses anyway).
    significant = "".join(map(str, value.as_tuple().digits)).strip("0")
    if connection.vendor == "sqlite" and len(significant) > SQLITE_SIGNIFICANT_DIGITS:
        raise ValidationError(
            f"The embedded SQLite database keeps {SQLITE_SIGNIFICANT_DIGITS} significant digits; "
            "this value would be stored altered (Postgres keeps all of them)."
        )
