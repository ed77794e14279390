"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ops.health.exceptions import DependencyUnavailable
from ops.health.probes import Database, Redis
from ops.http import Timeout

logger = logging.getLogger(__name__)

# Orchestrators call /readyz every few seconds and give up on it quickly themselves:
# answer within about a second rather than wait out the dashboard probes' timeouts.
READINESS_TIMEOUT = Timeout(connect=1.0, read=1.0)


FAVICON = Path(__file__).resolve().parent / "static" / "ops" / "favicon.ico"


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask every site for /favicon.ico: answer it (a tab icon, not a 404 in the log)."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    # Liveness does no I/O: a slow database must not get healthy web workers restarted.
    return JsonResponse({"status": "ok"})


def readiness_probes() -> tuple[Database | Redis, ...]:
    """The database, and the Celery broker when it is a server (the file-system one is not)."""
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return (Database(), Redis(name="broker", url=settings.CELERY_BROKER_URL, timeout=READINESS_TIMEOUT))
    return (Database(),)


def _readiness(probe: Database | Redis) -> str:
    try:
        probe.run()
    except Exception as exc:  # any failure means not ready
        # The full text (host, user) goes to the log only: /readyz is unauthenticated.
        logger.warning("readyz: %s: %s", probe.name, exc)
        # A probe turns the library's error into DependencyUnavailable; the library
        # error's class (ConnectionError, TimeoutError) says what failed without where.
        if isinstance(exc, DependencyUnavailable) and exc.__context__ is not None:
            exc = exc.__context__
        return f"unreachable ({type(exc).__name__})"
    return "ok"


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {probe.name: _readiness(probe) for probe in readiness_probes()}
    ready = all(detail == "ok" for detail in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
