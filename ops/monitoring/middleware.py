"""Request metrics of the contract: count, latency, errors, requests in flight."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ops.monitoring.metrics import ACTIVE_CONNECTIONS, ERRORS, REQUEST_DURATION, REQUESTS, UNMATCHED_ROUTE

METRICS_ROUTE = "metrics"


def route_of(request: HttpRequest) -> str:
    # The URL pattern, never the raw path: /admin/ops/trade/42/change/ and .../43/
    # are one series.
    match = getattr(request, "resolver_match", None)
    return match.route or match.view_name if match else UNMATCHED_ROUTE


class MetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The scrape itself is not "in flight" traffic: an idle server reads 0.
        in_flight = request.path_info != f"/{METRICS_ROUTE}"
        if in_flight:
            ACTIVE_CONNECTIONS.inc()
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            if in_flight:
                ACTIVE_CONNECTIONS.dec()
        route = route_of(request)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        REQUEST_DURATION.labels(request.method, route).observe((time.perf_counter() - started) * 1000)
        if response.status_code >= 500 and not getattr(request, "_investiq_exception_counted", False):
            ERRORS.labels(route, "status_5xx").inc()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        ERRORS.labels(route_of(request), "exception").inc()
        request._investiq_exception_counted = True
