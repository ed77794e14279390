"""The request middleware as it ran before P1 (issue 12), for bench/middleware_cost.py's
"before" variant: all eighteen django-prometheus request families, label children cached.
Used with django_prometheus.middleware.PrometheusBeforeMiddleware in front."""

from __future__ import annotations

import django_prometheus.middleware

from ops.monitoring.middleware import _child


class PrometheusAfterMiddleware(django_prometheus.middleware.PrometheusAfterMiddleware):
    def label_metric(self, metric, request, response=None, **labels):
        return _child(metric, **labels) if labels else metric
