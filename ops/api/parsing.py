"""Reading a request body as one JSON object, with size and type limits."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from ops.api.errors import ApiError


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json_object(request: HttpRequest) -> dict[str, Any]:
    limit = settings.API_MAX_BODY_BYTES
    if request.content_type != "application/json":
        raise ApiError(
            400, "unsupported_content_type", "Send the body as JSON with 'Content-Type: application/json'."
        )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise ApiError(413, "payload_too_large", f"The body may be at most {limit} bytes.")
    # Read one byte past the limit so a body without (or lying in) Content-Length is
    # caught too, without buffering more than the limit.
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "payload_too_large", f"The body may be at most {limit} bytes.")
    try:
        # Decimal, not float: prices and quantities must arrive exactly as sent.
        payload = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "The body must be one JSON object.")
    return payload
