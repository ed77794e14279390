"""Scope names: `global`, `strategy:<name>`, `symbol:<TICKER>`."""

from __future__ import annotations

from ops.trading.models import GLOBAL_SCOPE
from ops.validators import is_strategy, is_symbol


class InvalidScope(ValueError):
    pass


def parse_scope(text: str) -> str:
    """Return the canonical scope for `text`, or raise InvalidScope saying why."""
    text = (text or "").strip()
    if text == GLOBAL_SCOPE:
        return text
    kind, _, name = text.partition(":")
    if kind == "strategy" and is_strategy(name):
        return f"strategy:{name}"
    if kind == "symbol" and is_symbol(name.upper()):
        return f"symbol:{name.upper()}"
    raise InvalidScope(
        f"{text!r} is not a scope: use 'global', 'strategy:<name>' (letters, digits, _ . -) "
        "or 'symbol:<TICKER>' (A–Z and '.')."
    )


def trade_scopes(symbol: str | None, strategy: str | None) -> list[str]:
    """The scopes that govern a trade, broadest first (the tie-breaker for reporting)."""
    scopes = [GLOBAL_SCOPE]
    if strategy:
        scopes.append(f"strategy:{strategy}")
    if symbol:
        scopes.append(f"symbol:{symbol}")
    return scopes
