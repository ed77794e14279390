"""All outbound HTTP goes through here: a timeout is mandatory, errors are ours.

Callers get either parsed JSON or an OutboundError whose `kind` says what went wrong
(timeout, connection, unauthorized, redirect, http_error, malformed) in words an
operator reads.

Redirects are never followed: requests would re-send our headers (the Alpaca secret,
the Polygon key) to wherever a 3xx points, and none of the APIs we call redirect a
correct URL, so a 3xx means a wrong base URL or a hijacked one either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests


class OutboundError(Exception):
    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class Timeout:
    connect: float
    read: float

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    body: Any


def request_json(
    method: str,
    url: str,
    *,
    timeout: Timeout,
    headers: dict[str, str] | None = None,
    ok_statuses: tuple[int, ...] = (200,),
    json: Any = None,
) -> OutboundResponse:
    """The answer's parsed JSON body, or OutboundError. `json`: a body to send as JSON."""
    response = _send(method, url, timeout, headers, ok_statuses, json)
    try:
        body = response.json()
    except ValueError:
        raise OutboundError(
            "malformed",
            f"HTTP {response.status_code} with a body that is not JSON: {response.text[:200]!r}",
            response.status_code,
        ) from None
    return OutboundResponse(response.status_code, body)


def request_text(
    method: str,
    url: str,
    *,
    timeout: Timeout,
    headers: dict[str, str] | None = None,
    ok_statuses: tuple[int, ...] = (200,),
) -> OutboundResponse:
    """The answer's body as text (readiness pages, the Prometheus exposition format)."""
    response = _send(method, url, timeout, headers, ok_statuses, None)
    return OutboundResponse(response.status_code, response.text)


def _send(
    method: str,
    url: str,
    timeout: Timeout,
    headers: dict[str, str] | None,
    ok_statuses: tuple[int, ...],
    json: Any,
) -> requests.Response:
    try:
        # Never follow a redirect: it would re-send our credentials to wherever it points.
        response = requests.request(
            method, url, headers=headers, json=json, timeout=timeout.as_tuple(), allow_redirects=False
        )
    except requests.exceptions.ConnectTimeout:
        raise OutboundError("timeout", f"no connection within {timeout.connect:g}s") from None
    except requests.exceptions.ReadTimeout:
        raise OutboundError("timeout", f"no answer within {timeout.read:g}s") from None
    except requests.exceptions.ConnectionError as exc:
        raise OutboundError("connection", f"connection failed: {_connection_reason(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise OutboundError("connection", f"request failed: {_first_line(exc)}") from None
    if response.is_redirect:
        location = response.headers.get("Location", "")
        raise OutboundError(
            "redirect",
            f"HTTP {response.status_code}: redirect to {location[:200]!r} not followed",
            response.status_code,
        )
    if response.status_code in (401, 403):
        raise OutboundError(
            "unauthorized", f"HTTP {response.status_code}: credentials refused", response.status_code
        )
    if response.status_code not in ok_statuses:
        raise OutboundError(
            "http_error", f"HTTP {response.status_code}: {response.text[:200]!r}", response.status_code
        )
    return response


def _connection_reason(exc: Exception) -> str:
    # urllib3 nests the cause deep in a long repr; "[Errno 111] Connection refused"
    # is what an operator needs to read.
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip()
    if "Name or service not known" in text or "NameResolutionError" in text:
        return "host name does not resolve"
    return _first_line(exc)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
