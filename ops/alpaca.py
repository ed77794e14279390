"""The Alpaca client: its settings, its credentials, and the two calls we make.

The broker's cancel (ops.trading.broker) and the health probe (ops.health.probes) both
go through here, so the URL and the credential headers are built in one place. Calls
go through ops.http: a timeout is mandatory and failures raise OutboundError; what a
failure means (retry or not, up or down) is for the caller to say.
"""

from __future__ import annotations

from django.conf import settings

from ops.http import OutboundResponse, Timeout, request_json


def configured() -> bool:
    return bool(settings.ALPACA_BASE_URL and settings.ALPACA_KEY_ID and settings.ALPACA_SECRET_KEY)


def default_timeout() -> Timeout:
    """The broker's own timeouts (the probe passes the shorter PROBE_* ones instead)."""
    return Timeout(settings.ALPACA_CONNECT_TIMEOUT, settings.ALPACA_READ_TIMEOUT)


def url(path: str) -> str:
    return settings.ALPACA_BASE_URL.rstrip("/") + path


def headers() -> dict[str, str]:
    return {"APCA-API-KEY-ID": settings.ALPACA_KEY_ID, "APCA-API-SECRET-KEY": settings.ALPACA_SECRET_KEY}


def clock(timeout: Timeout) -> object:
    """GET /v2/clock: authenticated and cheap, so it tells whether Alpaca answers us."""
    return request_json("GET", url("/v2/clock"), timeout=timeout, headers=headers()).body


def cancel_all_orders() -> OutboundResponse:
    """DELETE /v2/orders: cancel every open order.

    Alpaca answers 207 Multi-Status, one entry per order with its own status.
    """
    return request_json(
        "DELETE", url("/v2/orders"), timeout=default_timeout(), headers=headers(), ok_statuses=(200, 207)
    )
