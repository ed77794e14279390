"""Request metrics of the contract: count, latency, errors, requests in flight."""

from __future__ import annotations

import time
from collections.abc import Callable

import django_prometheus.middleware
from django.http import HttpRequest, HttpResponse
from django_prometheus.utils import Time, TimeSince

from ops.metrics import ACTIVE_CONNECTIONS, ERRORS, REQUEST_DURATION, REQUESTS, UNMATCHED_ROUTE

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


# django-prometheus's request families that the widely used Django dashboards read
# (django-mixin's "Django / Requests" dashboards, grafana.com 17613 and 17616, and its
# alerts): requests by view/method, responses by status/view/method, latency by
# view/method, exceptions by type (issue 12's decision). Its fourteen other request
# families are never created: those by method, by status, by view for exceptions, the
# *_before_middlewares counts and latency duplicate investiq_requests_total,
# investiq_request_duration_milliseconds and investiq_errors_total; body sizes, charset,
# streaming, ajax, transport, template names and *_unknown_latency go unread by the
# dashboards we found, or only in django-mixin's weekly "top N" tables (templates,
# exceptions by view). Each family is multiprocess file writes on every request: see
# docs/benchmarks.md (b); the list of families is in monitoring/README.md.
DASHBOARD_FAMILIES = frozenset(
    {
        "django_http_requests_total_by_view_transport_method",
        "django_http_responses_total_by_status_view_method",
        "django_http_requests_latency_seconds_by_view_method",
        "django_http_exceptions_total_by_type",
    }
)


class DashboardMetrics(django_prometheus.middleware.Metrics):
    """django-prometheus's Metrics, through its documented register_metric hook, creating
    only DASHBOARD_FAMILIES: the others are never registered, so they cannot be written or
    exported (an unlabelled one would otherwise show up at 0 in every worker's file)."""

    # Our own singleton slot: get_instance() reads cls._instance, which would otherwise
    # fall back to the base class's, with all eighteen families, if anything made one.
    _instance = None

    def register_metric(self, metric_cls, name, documentation, labelnames=(), **kwargs):
        if name not in DASHBOARD_FAMILIES:
            return None
        return super().register_metric(metric_cls, name, documentation, labelnames=labelnames, **kwargs)


class PrometheusAfterMiddleware(django_prometheus.middleware.PrometheusAfterMiddleware):
    """django-prometheus's request middleware recording only DASHBOARD_FAMILIES.

    Same names, labels, buckets and label values as upstream (its own _method,
    _transport and _get_view_name), through its documented metrics_cls and label_metric
    hooks. The process_* methods are upstream's minus the writes to dropped families;
    they must all be overridden, since upstream's would touch families that do not exist.
    PrometheusBeforeMiddleware is not installed: everything it records is dropped.
    """

    metrics_cls = DashboardMetrics

    def label_metric(self, metric, request, response=None, **labels):
        return _child(metric, **labels) if labels else metric

    def process_request(self, request):
        request.prometheus_after_middleware_event = Time()

    def process_view(self, request, view_func, *view_args, **view_kwargs):
        self.label_metric(
            self.metrics.requests_by_view_transport_method,
            request,
            view=self._get_view_name(request),
            transport=self._transport(request),
            method=self._method(request),
        ).inc()

    def process_template_response(self, request, response):
        return response  # by-template-name is a dropped family

    def process_response(self, request, response):
        name = self._get_view_name(request)
        self.label_metric(
            self.metrics.responses_by_status_view_method,
            request,
            response,
            status=str(response.status_code),
            view=name,
            method=self._method(request),
        ).inc()
        started = getattr(request, "prometheus_after_middleware_event", None)
        if started is not None:
            # Observed here only: upstream also observes in process_exception, so a
            # request that raised counted twice. Every request, the 500 for an
            # exception included, comes back through process_response.
            self.label_metric(
                self.metrics.requests_latency_by_view_method,
                request,
                response,
                view=name,
                method=request.method,
            ).observe(TimeSince(started))
        return response

    def process_exception(self, request, exception):
        self.label_metric(self.metrics.exceptions_by_type, request, type=type(exception).__name__).inc()


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
