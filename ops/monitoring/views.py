"""GET /metrics: multiprocess values and database values, each exported exactly once."""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from ops.bearer import bearer_token
from ops.monitoring.collector import DatabaseCollector

_database_collector = DatabaseCollector()


class _Registry:
    """What generate_latest() needs: something with collect()."""

    def __init__(self, *sources) -> None:
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()


def _registry() -> _Registry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Under gunicorn: every worker's files, summed. A fresh registry per scrape, as
        # prometheus_client requires; the default REGISTRY's values are in the files.
        per_process = CollectorRegistry()
        multiprocess.MultiProcessCollector(per_process)
        return _Registry(per_process, _database_collector)
    return _Registry(REGISTRY, _database_collector)


def exposition() -> bytes:
    """What /metrics answers, without a request (the kill-switch drill reads it in-process)."""
    return generate_latest(_registry())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    expected = settings.METRICS_TOKEN
    if expected:
        given = bearer_token(request) or ""
        # Constant-time: the comparison must not leak how much of the token matched.
        if not hmac.compare_digest(given.encode(), expected.encode()):
            response = HttpResponse(
                "metrics need 'Authorization: Bearer <METRICS_TOKEN>'\n",
                status=401,
                content_type="text/plain",
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
