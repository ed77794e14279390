"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    # Liveness does no I/O: a slow database must not get healthy web workers restarted.
    return JsonResponse({"status": "ok"})


def _database_ready() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means not ready
        # The full text (host, user) goes to the log only: /readyz is unauthenticated.
        logger.warning("readyz: database: %s", exc)
        return f"unreachable ({type(exc).__name__})"
    return None


def _broker_ready() -> str | None:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None  # the file-system broker needs no server
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:
        logger.warning("readyz: broker: %s", exc)
        return f"unreachable ({type(exc).__name__})"
    return None


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ready(), "broker": _broker_ready()}
    failing = {name: detail for name, detail in checks.items() if detail}
    body = {
        "status": "unavailable" if failing else "ok",
        "checks": {name: detail or "ok" for name, detail in checks.items()},
    }
    return JsonResponse(body, status=503 if failing else 200)
