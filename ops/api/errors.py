"""The API's one error shape: {"error": code, "detail": text, "fields": {...}}."""

from __future__ import annotations

import sys
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from psycopg_pool import PoolTimeout

from ops.api.bodies import ErrorBody
from ops.db import is_full, server_refusal


class ApiError(Exception):
    """Raised anywhere below a view; the api_view decorator turns it into a response.

    `shape`: the body's model when it says more than the error (the gate's 423 names
    the state that decided, a 409 the trade already recorded), its fields in `extra`.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        shape: type[ErrorBody] = ErrorBody,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = fields
        self.headers = headers or {}
        self.shape = shape
        self.extra = extra

    def response(self) -> HttpResponse:
        return error_response(
            self.status, self.code, self.detail, self.fields, self.headers, self.shape, **self.extra
        )


def error_response(
    status: int,
    code: str,
    detail: str,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    shape: type[ErrorBody] = ErrorBody,
    **extra: Any,
) -> HttpResponse:
    body = {"error": code, "detail": detail, **extra}
    if fields:
        body["fields"] = fields
    return shape.model_validate(body).response(status, headers)


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


DATABASE_BUSY_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Database busy (503)</title></head>
<body>
<h1>Database busy</h1>
<p>The database is reachable, but it did not answer this page in time (every connection
was busy, a query timed out, or it waited too long for a lock). Trading is not halted by
this; halts already made stay in force.</p>
<p>Try again in a moment.</p>
</body>
</html>
"""

DATABASE_FULL_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Database full (503)</title></head>
<body>
<h1>Database full</h1>
<p>The database is up but admits no more connections (it is at max_connections), and this
page could not get one. Trading is not halted by this, and halts already made stay in
force; the pre-trade gate answers on the connections it already holds and may answer some
orders 503.</p>
<p>To halt now, from a shell on an app host: <code>manage.py trading halt --reason ... --actor
...</code>. It gets in with <code>KILLSWITCH_DATABASE_URL</code> (README: Database
connections).</p>
</body>
</html>
"""

# Postgres SQLSTATEs that mean the server or the connection is gone, or takes no more
# work: class 08 (connection exceptions), class 53 (too many connections, out of memory,
# disk full) and the shutdown codes. A statement timeout (57014), a deadlock (40P01) or
# a lock wait (55P03) is a busy database, not an outage.
_GONE_CLASSES = ("08", "53")
_GONE_SQLSTATES = ("57P01", "57P02", "57P03")


def _database_failure() -> str | None:
    """'gone', 'full', 'busy' or None (not a database failure), from the exception being
    handled.

    Django calls handler500 inside its `except` block: the current exception is the cause.
    """
    exc = sys.exc_info()[1]
    if isinstance(exc, InterfaceError):
        return "gone"  # the connection object is closed or unusable
    if not isinstance(exc, OperationalError):
        return None
    cause = exc.__cause__
    if isinstance(cause, PoolTimeout):
        # No pooled connection within DB_POOL_TIMEOUT: every one was busy (a saturated
        # server; the gate still answers, in turn), or the pool could not connect at all
        # (the server full, or gone), which a direct connect tells.
        cause = server_refusal()
        if cause is None:
            return "busy"
        if is_full(cause):
            return "full"
        if not getattr(cause, "sqlstate", None):
            return "gone"
    elif is_full(cause or exc):
        return "full"
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate:
        return "gone" if sqlstate[:2] in _GONE_CLASSES or sqlstate in _GONE_SQLSTATES else "busy"
    # No SQLSTATE: psycopg could not connect or lost the connection; on SQLite, a busy
    # timeout says "database is locked" and everything else means the file is unusable.
    return "busy" if "database is locked" in str(exc) else "gone"


def server_error(request):
    from django.views.defaults import server_error as html_server_error

    failure = _database_failure()
    if failure == "gone":
        # An outage, not a bug: 503 says "try again", and the page says what it means for
        # trading. (API views answer their own 503s; this catches the console and admin.)
        if request.path.startswith("/api/"):
            return error_response(503, "database_unavailable", "The database is not reachable.")
        return HttpResponse(DATABASE_UNAVAILABLE_PAGE, status=503)
    if failure == "full":
        if request.path.startswith("/api/"):
            return error_response(
                503, "database_unavailable", "The database admits no more connections; try again."
            )
        return HttpResponse(DATABASE_FULL_PAGE, status=503)
    if failure == "busy":
        # Reachable but slow: telling on-call the gate refuses trades would be false.
        if request.path.startswith("/api/"):
            # The API's one code for "database: retry later" (api_view answers it too).
            return error_response(
                503, "database_unavailable", "The database did not answer in time; try again."
            )
        return HttpResponse(DATABASE_BUSY_PAGE, status=503)
    if request.path.startswith("/api/"):
        # Machine clients parse JSON; the traceback is in the log, never in the body.
        return error_response(500, "internal_error", "Unexpected server error; it has been logged.")
    return html_server_error(request)
