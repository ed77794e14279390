"""The outbound HTTP helper against real local HTTP servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from ops.health.exceptions import DependencyUnavailable
from ops.health.probes import Alpaca
from ops.http import OutboundError, OutboundResponse, Timeout, request_json

TIMEOUT = Timeout(1, 1)
SECRET_HEADERS = {"APCA-API-KEY-ID": "key-id", "APCA-API-SECRET-KEY": "the-secret"}


@pytest.fixture
def elsewhere() -> Iterator[HTTPServer]:
    """A second server: where a redirect from the first one points."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_a_json_answer_comes_back_with_its_status(httpserver):
    httpserver.expect_request("/v2/clock").respond_with_json({"is_open": True})
    answer = request_json("GET", httpserver.url_for("/v2/clock"), timeout=TIMEOUT)
    assert answer == OutboundResponse(200, {"is_open": True})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_its_target_never_gets_the_secret(httpserver, elsewhere, status):
    target = elsewhere.url_for("/v2/clock")
    elsewhere.expect_request("/v2/clock").respond_with_json({"is_open": True})
    httpserver.expect_request("/v2/clock").respond_with_response(
        Response(status=status, headers={"Location": target})
    )

    with pytest.raises(OutboundError) as caught:
        request_json("GET", httpserver.url_for("/v2/clock"), timeout=TIMEOUT, headers=SECRET_HEADERS)

    assert (caught.value.kind, caught.value.status) == ("redirect", status)
    assert caught.value.detail == f"HTTP {status}: redirect to {target!r} not followed"
    (request, _), *_ = httpserver.log
    assert request.headers["APCA-API-SECRET-KEY"] == "the-secret"  # the first server was asked
    assert elsewhere.log == []  # the second one never was


def test_the_alpaca_probe_reports_a_redirect_as_down(settings, httpserver, elsewhere):
    settings.ALPACA_BASE_URL = httpserver.url_for("/").rstrip("/")
    settings.ALPACA_KEY_ID, settings.ALPACA_SECRET_KEY = "key-id", "the-secret"
    httpserver.expect_request("/v2/clock").respond_with_response(
        Response(status=302, headers={"Location": elsewhere.url_for("/v2/clock")})
    )
    with pytest.raises(DependencyUnavailable, match=r"HTTP 302: redirect to .* not followed"):
        Alpaca().run()
    assert elsewhere.log == []
