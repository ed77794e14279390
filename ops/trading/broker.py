"""Broker actions on a halt: cancel every open order at Alpaca."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from ops.http import OutboundError, Timeout, request_json
from ops.trading.models import BrokerCancellation, BrokerOutcome, TradingEvent

logger = logging.getLogger(__name__)


def alpaca_timeout() -> Timeout:
    return Timeout(settings.ALPACA_CONNECT_TIMEOUT, settings.ALPACA_READ_TIMEOUT)


def alpaca_configured() -> bool:
    return bool(settings.ALPACA_BASE_URL and settings.ALPACA_KEY_ID and settings.ALPACA_SECRET_KEY)


def alpaca_url(path: str) -> str:
    return settings.ALPACA_BASE_URL.rstrip("/") + path


def alpaca_headers() -> dict[str, str]:
    return {"APCA-API-KEY-ID": settings.ALPACA_KEY_ID, "APCA-API-SECRET-KEY": settings.ALPACA_SECRET_KEY}


def cancel_open_orders() -> dict[str, Any]:
    """DELETE /v2/orders. Returns the outcome as stored on the event; never raises."""
    if not alpaca_configured():
        return {
            "ok": False,
            "error": "Alpaca is not configured (ALPACA_BASE_URL, ALPACA_KEY_ID, ALPACA_SECRET_KEY).",
        }
    url = alpaca_url("/v2/orders")
    try:
        # Alpaca answers 207 Multi-Status: one entry per order with its own status.
        response = request_json(
            "DELETE", url, timeout=alpaca_timeout(), headers=alpaca_headers(), ok_statuses=(200, 207)
        )
    except OutboundError as exc:
        return {"ok": False, "error": exc.detail, "kind": exc.kind}
    if not isinstance(response.body, list) or not all(isinstance(item, dict) for item in response.body):
        return {
            "ok": False,
            "error": f"malformed answer: expected a list of orders, got {response.body!r:.200}",
            "kind": "malformed",
        }
    cancelled = [str(item.get("id")) for item in response.body if item.get("status") in (200, 204, None)]
    failed = [
        {"id": str(item.get("id")), "status": item.get("status")}
        for item in response.body
        if item.get("status") not in (200, 204, None)
    ]
    return {"ok": not failed, "cancelled": cancelled, "failed": failed}


def cancel_and_record(model: type[TradingEvent | BrokerCancellation], pk: int) -> None:
    """Run the cancel and record its outcome on the row (an event or a cancellation), once."""
    outcome = cancel_open_orders()
    status = BrokerOutcome.SUCCEEDED if outcome["ok"] else BrokerOutcome.FAILED
    # Compare-and-set from PENDING: the outcome is written once and never overwritten.
    model.objects.filter(pk=pk, broker_outcome=BrokerOutcome.PENDING).update(
        broker_outcome=status, broker_detail=outcome
    )
    log = logger.info if outcome["ok"] else logger.error
    log("broker cancel for %s %s: %s", model._meta.model_name, pk, outcome)
