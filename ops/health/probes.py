"""One small probe per dependency. run() returns a detail string or raises.

Which probes run is the explicit PROBES tuple at the bottom, not a registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection

from ops import alpaca
from ops.health.exceptions import DependencyUnavailable, NotConfigured
from ops.http import OutboundError, Timeout, request_json


def _timeout() -> Timeout:
    return Timeout(settings.PROBE_CONNECT_TIMEOUT, settings.PROBE_READ_TIMEOUT)


def _get_json(url: str, headers: dict[str, str] | None = None) -> object:
    try:
        return request_json("GET", url, timeout=_timeout(), headers=headers).body
    except OutboundError as exc:
        raise DependencyUnavailable(exc.detail) from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


@dataclass(frozen=True)
class Database:
    name: str = "database"

    def run(self) -> str:
        # A database that is down is an outage to report, not a bug: our own exception,
        # so the runner does not log a traceback every cycle of it.
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as exc:
            raise DependencyUnavailable(f"{connection.vendor}: {_first_line(exc)}") from None
        return f"{connection.vendor} answers"


@dataclass(frozen=True)
class Redis:
    """PING the Redis at `url` (default: REDIS_URL), e.g. the Celery broker for /readyz."""

    name: str = "redis"
    # repr=False: a Redis URL may carry a password, and reprs end up in logs.
    url: str | None = field(default=None, repr=False)
    timeout: Timeout | None = None  # default: the PROBE_* settings

    def run(self) -> str:
        url = settings.REDIS_URL if self.url is None else self.url
        if not url:
            raise NotConfigured("REDIS_URL is not set")
        import redis

        timeout = self.timeout or _timeout()
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout.connect, socket_timeout=timeout.read
        )
        try:
            client.ping()
        except redis.exceptions.TimeoutError:
            raise DependencyUnavailable(f"no answer to PING within {timeout.read:g}s") from None
        except redis.exceptions.AuthenticationError as exc:
            raise DependencyUnavailable(f"credentials refused: {exc}") from None
        except redis.exceptions.ConnectionError as exc:
            raise DependencyUnavailable(f"connection failed: {exc}") from None
        finally:
            client.close()
        return "PONG"


@dataclass(frozen=True)
class Polygon:
    name: str = "polygon"

    def run(self) -> str:
        if not (settings.POLYGON_BASE_URL and settings.POLYGON_API_KEY):
            raise NotConfigured("POLYGON_API_KEY is not set")
        # Market status: authenticated, cheap, no quota-heavy data. The key goes in a
        # header, so it never lands in a URL or an access log.
        body = _get_json(
            settings.POLYGON_BASE_URL.rstrip("/") + "/v1/marketstatus/now",
            {"Authorization": f"Bearer {settings.POLYGON_API_KEY}"},
        )
        if not isinstance(body, dict) or "market" not in body:
            raise DependencyUnavailable(f"unexpected answer: {body!r:.200}")
        return f"market {body['market']}"


@dataclass(frozen=True)
class Alpaca:
    name: str = "alpaca"

    def run(self) -> str:
        if not alpaca.configured():
            raise NotConfigured("ALPACA_KEY_ID / ALPACA_SECRET_KEY are not set")
        try:
            body = alpaca.clock(_timeout())
        except OutboundError as exc:
            raise DependencyUnavailable(exc.detail) from None
        if not isinstance(body, dict) or "is_open" not in body:
            raise DependencyUnavailable(f"unexpected answer: {body!r:.200}")
        return "market open" if body["is_open"] else "market closed"


@dataclass(frozen=True)
class MLService:
    name: str = "ml_service"

    HEALTHY = ("ok", "healthy", "up", "pass")

    def run(self) -> str:
        if not settings.ML_SERVICE_URL:
            raise NotConfigured("ML_SERVICE_URL is not set")
        body = _get_json(settings.ML_SERVICE_URL.rstrip("/") + "/health")
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(status, str):
            raise DependencyUnavailable(f'answer has no "status": {body!r:.200}')
        if status.lower() not in self.HEALTHY:
            raise DependencyUnavailable(f"reports status {status!r}")
        return f"status {status}"


PROBES = (Database(), Redis(), Polygon(), Alpaca(), MLService())
