"""The wrapper every machine-facing API view goes through."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable

from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from ops.api.admission import EngineSaturated, engine_slot
from ops.api.auth import Credentials, require_token
from ops.api.errors import ApiError, error_response
from ops.api.models import ApiClient
from ops.metrics import ORDERS_DENIED

logger = logging.getLogger(__name__)

# A view gets the authenticated client, or with authenticates=False the request's
# Credentials, which it checks itself.
ApiView = Callable[[HttpRequest, ApiClient | Credentials], HttpResponse]


# The answers that refuse an order: counted in investiq_orders_denied_total by their code.
REFUSALS = (423, 503)


def api_view(
    *methods: str,
    scope: str,
    unavailable: str = "database_unavailable",
    engine: bool = True,
    counts_refusals: bool = False,
    authenticates: bool = True,
) -> Callable[[ApiView], Callable[[HttpRequest], HttpResponse]]:
    """Method check, bearer auth, the token's scope and the JSON error shape, in that order
    (with `authenticates=False`, the view keeps that order itself).

    `unavailable` is the error code when the database cannot be reached at all (the
    trade gate says trading_state_unavailable: it cannot know the state, so it refuses).
    `engine`: the trading engine's traffic, held to its share of the connection pool
    (ops.api.admission); Alertmanager's webhook is not, since its alert actions halt.
    `counts_refusals`: every 423 and 503 answer counts in investiq_orders_denied_total
    with its error code, whatever failed first (the token look-up, the pool, the gate).
    `authenticates=False`: the view gets the request's Credentials instead of its client
    and checks them itself, answering 401 and 403 before any other answer of its own:
    the trade gate checks the token in its own statement (one round trip per order).

    CSRF does not apply: machine clients authenticate with a bearer token, never a
    cookie, so a browser cannot be tricked into sending one.
    """

    def decorate(view: ApiView) -> Callable[[HttpRequest], HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                return error_response(
                    405,
                    "method_not_allowed",
                    f"Use {' or '.join(methods)}.",
                    headers={"Allow": ", ".join(methods)},
                )
            code, response = answer(request, *args, **kwargs)
            if counts_refusals and response.status_code in REFUSALS:
                # A view answers refusals by raising ApiError, which names the code; any
                # other 423/503 says it in its body.
                ORDERS_DENIED.labels(code or json.loads(response.content).get("error", "")).inc()
            return response

        def answer(request: HttpRequest, *args, **kwargs) -> tuple[str, HttpResponse]:
            """The response and its error code ("" for a success)."""
            try:
                # No token, no slot: a request that cannot be authenticated never takes one
                # of the engine's connections, nor waits for one.
                token = require_token(request)
                credentials = Credentials(token, scope)
                with engine_slot() if engine else contextlib.nullcontext():
                    given = credentials.client() if authenticates else credentials
                    return "", view(request, given, *args, **kwargs)
            except ApiError as exc:
                return exc.code, exc.response()
            except EngineSaturated as exc:
                # Every connection the engine may use is busy: back off and retry. Nothing
                # was sent to the database, so nothing can have been recorded.
                logger.warning("%s: %s", view.__name__, exc)
                return unavailable, error_response(
                    503,
                    unavailable,
                    "The server is saturated: no database connection came free in time. Nothing "
                    "was recorded; retry (an order with the same client_order_id).",
                    headers={"Retry-After": "1"},
                )
            except (OperationalError, InterfaceError) as exc:
                # The database is down or unreachable: say so, so clients back off and
                # retry, instead of a bare 500 that looks like a bug in their request.
                logger.error("database unavailable in %s: %s", view.__name__, exc)
                # Not "nothing was recorded": a connection cut after the server received
                # a write may still have committed it.
                detail = "The database is not reachable"
                if request.method != "GET":
                    detail += "; the request is not confirmed"
                return unavailable, error_response(503, unavailable, detail + ".")
            except DataError as exc:
                # A value the database cannot hold (e.g. a position beyond its range):
                # the transaction rolled back, nothing was written.
                logger.warning("value out of range in %s: %s", view.__name__, exc)
                return "value_out_of_range", error_response(
                    400, "value_out_of_range", "A value is outside what can be stored."
                )
            except DatabaseError:
                logger.exception("database error in %s", view.__name__)
                raise

        # Read by the OpenAPI test: the document must name the same methods and scope.
        wrapper.api_methods = methods
        wrapper.api_scope = scope
        return wrapper

    return decorate
