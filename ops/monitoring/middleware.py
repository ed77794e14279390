"""Request metrics of the contract: count, latency, errors, requests in flight."""

from __future__ import annotations

import time
from collections.abc import Callable

import django_prometheus.middleware
from django.http import HttpRequest, HttpResponse

from ops.monitoring.metrics import ACTIVE_CONNECTIONS, ERRORS, REQUEST_DURATION, REQUESTS, UNMATCHED_ROUTE

METRICS_ROUTE = "metrics"
# The methods this service answers; anything else would be an unbounded label value.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RejectUnknownMethods:
    """Outermost middleware: made-up HTTP methods get 405 before any metric sees them.

    django-prometheus labels by the raw method, so `FOO /healthz` from anyone would add
    dozens of series per invented method.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in KNOWN_METHODS:
            response = HttpResponse(status=405, content_type="text/plain")
            response["Allow"] = ", ".join(sorted(KNOWN_METHODS))
            return response
        return self.get_response(request)


def route_of(request: HttpRequest) -> str:
    # The URL pattern, never the raw path: /admin/ops/trade/42/change/ and .../43/
    # are one series.
    match = getattr(request, "resolver_match", None)
    return match.route or match.view_name if match else UNMATCHED_ROUTE


_children: dict[tuple, object] = {}


def _child(metric, *labels: str, **named: str):
    # metric.labels() validates and locks on every call (~2-3 µs, a dozen times per
    # request with django-prometheus); the label sets are bounded (known methods,
    # URL patterns, statuses), so keep the children.
    key = (metric, labels, tuple(sorted(named.items())))
    child = _children.get(key)
    if child is None:
        child = _children.setdefault(key, metric.labels(*labels, **named))
    return child


class PrometheusAfterMiddleware(django_prometheus.middleware.PrometheusAfterMiddleware):
    """django-prometheus's request families, unchanged, through its documented
    label_metric hook with the children cached (measured: its labels() lookups were
    most of the request-metrics overhead)."""

    def label_metric(self, metric, request, response=None, **labels):
        return _child(metric, **labels) if labels else metric


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
        _child(REQUESTS, request.method, route, str(response.status_code)).inc()
        _child(REQUEST_DURATION, request.method, route).observe((time.perf_counter() - started) * 1000)
        if response.status_code >= 500:
            kind = "exception" if getattr(request, "_investiq_raised", False) else "status_5xx"
            ERRORS.labels(route, kind).inc()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Only noted here: Http404 or PermissionDenied also pass through, and become
        # 404/403, which are not errors. The status decides in __call__.
        request._investiq_raised = True
