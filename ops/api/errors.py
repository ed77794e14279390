"""The API's one error shape: {"error": code, "detail": text, "fields": {...}}."""

from __future__ import annotations

import sys
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse


class ApiError(Exception):
    """Raised anywhere below a view; the api_view decorator turns it into a response."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = fields
        self.extra = extra or {}
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        return error_response(
            self.status, self.code, self.detail, self.fields, headers=self.headers, **self.extra
        )


def error_response(
    status: int,
    code: str,
    detail: str,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JsonResponse:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    body.update(extra)
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def not_found(request, exception=None):
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return error_response(404, "not_found", f"No API endpoint at {request.path}.")
    return page_not_found(request, exception)


# Self-contained on purpose: the site's templates run context processors (the trading
# banner) that read the very database that is gone.
DATABASE_UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Database unavailable (503)</title></head>
<body>
<h1>Database unavailable</h1>
<p>The InvestIQ database cannot be reached, so this page cannot show or change the trading state.</p>
<p>Meanwhile the pre-trade gate refuses every new trade (503 trading_state_unavailable): it fails
closed. Halts already made stay in force; they live in the database.</p>
<p><a href="/readyz">/readyz</a> names what is failing. This page answers again once the database is back.</p>
</body>
</html>
"""


def _database_unreachable() -> bool:
    # Django calls handler500 inside its `except` block: the current exception is the cause.
    return isinstance(sys.exc_info()[1], (OperationalError, InterfaceError))


def server_error(request):
    from django.views.defaults import server_error as html_server_error

    if _database_unreachable():
        # An outage, not a bug: 503 says "try again", and the page says what it means for
        # trading. (API views answer their own 503s; this catches the console and admin.)
        if request.path.startswith("/api/"):
            return error_response(503, "database_unavailable", "The database is not reachable.")
        return HttpResponse(DATABASE_UNAVAILABLE_PAGE, status=503)
    if request.path.startswith("/api/"):
        # Machine clients parse JSON; the traceback is in the log, never in the body.
        return error_response(500, "internal_error", "Unexpected server error; it has been logged.")
    return html_server_error(request)
