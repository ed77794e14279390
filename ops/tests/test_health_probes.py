"""Each external probe against a real local HTTP server that succeeds, fails or hangs."""

from __future__ import annotations

import json
import threading
import time

import pytest
from werkzeug import Response

from ops.health.exceptions import DependencyUnavailable, NotConfigured
from ops.health.models import Health
from ops.health.probes import Alpaca, MLService, Polygon, Redis
from ops.health.runner import run_probes

# probe, path it calls, a healthy body, what it reports when healthy
EXTERNAL = {
    "polygon": (Polygon(), "/v1/marketstatus/now", {"market": "open", "serverTime": "x"}, "market open"),
    "alpaca": (Alpaca(), "/v2/clock", {"is_open": False, "timestamp": "x"}, "market closed"),
    "ml_service": (MLService(), "/health", {"status": "ok", "model": "lstm-1.4"}, "status ok"),
}


@pytest.fixture
def configured(settings, httpserver):
    base = httpserver.url_for("/").rstrip("/")
    settings.POLYGON_BASE_URL, settings.POLYGON_API_KEY = base, "poly-key"
    settings.ALPACA_BASE_URL, settings.ALPACA_KEY_ID, settings.ALPACA_SECRET_KEY = base, "key-id", "secret"
    settings.ML_SERVICE_URL = base
    settings.PROBE_CONNECT_TIMEOUT = 0.5
    settings.PROBE_READ_TIMEOUT = 0.5
    return httpserver


def probe_result(name: str):
    (result,) = run_probes((EXTERNAL[name][0],))
    return result


@pytest.mark.parametrize("name", EXTERNAL)
def test_a_healthy_dependency_is_up(configured, name):
    _, path, body, detail = EXTERNAL[name]
    configured.expect_request(path, method="GET").respond_with_json(body)
    result = probe_result(name)
    assert (result.status, result.detail) == (Health.UP, detail)
    assert result.latency_ms > 0


def test_the_credentials_are_sent(configured):
    configured.expect_request(
        "/v1/marketstatus/now", headers={"Authorization": "Bearer poly-key"}
    ).respond_with_json({"market": "open"})
    configured.expect_request(
        "/v2/clock", headers={"APCA-API-KEY-ID": "key-id", "APCA-API-SECRET-KEY": "secret"}
    ).respond_with_json({"is_open": True})
    assert probe_result("polygon").status == Health.UP
    assert probe_result("alpaca").status == Health.UP


FAILURES = {
    "500": (lambda: Response("upstream broke", status=500), "HTTP 500"),
    "503": (lambda: Response("maintenance", status=503), "HTTP 503"),
    "401": (lambda: Response('{"message": "unauthorized"}', status=401), "HTTP 401: credentials refused"),
    "403": (lambda: Response('{"message": "forbidden"}', status=403), "HTTP 403: credentials refused"),
    "malformed-json": (
        lambda: Response("{not json", status=200, content_type="application/json"),
        "not JSON",
    ),
    "wrong-shape": (
        lambda: Response(json.dumps(["a", "list"]), status=200, content_type="application/json"),
        "['a', 'list']",  # the answer it could not use, quoted in the detail
    ),
}


@pytest.mark.parametrize("name", EXTERNAL)
@pytest.mark.parametrize("failure", FAILURES)
def test_each_failure_gives_down_with_its_own_detail(configured, name, failure):
    _, path, _, _ = EXTERNAL[name]
    make_response, expected = FAILURES[failure]
    configured.expect_request(path).respond_with_handler(lambda request: make_response())
    result = probe_result(name)
    assert result.status == Health.DOWN
    assert expected in result.detail
    if failure == "wrong-shape":
        assert "unexpected answer" in result.detail or 'no "status"' in result.detail


@pytest.mark.parametrize("name", EXTERNAL)
def test_connection_refused_is_said_so(settings, name):
    settings.POLYGON_BASE_URL = settings.ALPACA_BASE_URL = settings.ML_SERVICE_URL = "http://127.0.0.1:1"
    settings.POLYGON_API_KEY = settings.ALPACA_KEY_ID = settings.ALPACA_SECRET_KEY = "x"
    result = probe_result(name)
    assert (result.status, result.detail) == (Health.DOWN, "connection failed: Connection refused")


@pytest.mark.parametrize("name", EXTERNAL)
def test_slow_past_the_timeout_is_a_timeout(configured, name):
    _, path, body, _ = EXTERNAL[name]

    def slow(request):
        time.sleep(0.8)
        return Response(json.dumps(body), content_type="application/json")

    configured.expect_request(path).respond_with_handler(slow)
    result = probe_result(name)
    assert (result.status, result.detail) == (Health.DOWN, "no answer within 0.5s")


@pytest.mark.parametrize("name", EXTERNAL)
def test_a_hang_is_a_timeout_and_does_not_block(configured, name):
    _, path, _, _ = EXTERNAL[name]
    release = threading.Event()
    configured.expect_request(path).respond_with_handler(lambda request: release.wait(10) and Response("{}"))
    try:
        result = probe_result(name)  # the server is still holding the request: it never answered
    finally:
        release.set()
    assert (result.status, result.detail) == (Health.DOWN, "no answer within 0.5s")


def test_an_unhealthy_ml_status_is_down(configured):
    configured.expect_request("/health").respond_with_json({"status": "degraded"})
    result = probe_result("ml_service")
    assert (result.status, result.detail) == (Health.DOWN, "reports status 'degraded'")


@pytest.mark.parametrize("name", EXTERNAL)
def test_an_unconfigured_dependency_says_so(settings, name):
    settings.POLYGON_API_KEY = settings.ALPACA_KEY_ID = settings.ML_SERVICE_URL = ""
    result = probe_result(name)
    assert result.status == Health.NOT_CONFIGURED
    assert "not set" in result.detail
    with pytest.raises(NotConfigured):
        EXTERNAL[name][0].run()


def test_probe_errors_are_our_own_exceptions(settings):
    settings.ML_SERVICE_URL = "http://127.0.0.1:1"
    with pytest.raises(DependencyUnavailable):
        MLService().run()


def test_the_redis_probe_pings_the_url_it_is_given(settings, redis_url):
    settings.REDIS_URL = ""
    assert Redis(url=redis_url).run() == "PONG"


def test_the_redis_probe_keeps_its_url_out_of_its_repr():
    assert "hunter2" not in repr(Redis(url="redis://user:hunter2@127.0.0.1:1/0"))
