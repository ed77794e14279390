"""A banner on every staff page whenever any real scope is not ACTIVE (not the drill's)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from ops.trading.models import TradingState


def trading_banner(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not (user.is_authenticated and user.is_staff):
        return {}
    # Lazy: the query runs only on pages that render the banner.
    return {"trading_not_active": SimpleLazyObject(lambda: list(TradingState.objects.real().not_active()))}
