"""The helpers that start and wait for real processes in tests and benchmarks."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from werkzeug import Response

from ops.tests.processes import NotReady, wait_until_ready


def test_the_readiness_wait_outlasts_a_slow_first_answer(httpserver):
    # A fresh gunicorn worker's first request imports the project (~1 s on CI): the wait
    # must treat a read timeout as "not yet", not as a failure.
    calls = []

    def slow_first(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(1.5)
        return Response("ok")

    httpserver.expect_request("/readyz").respond_with_handler(slow_first)
    wait_until_ready(httpserver.url_for("/readyz"), within=20)
    assert calls


def test_the_readiness_wait_keeps_polling_until_the_status_is_right(httpserver):
    answers = iter([503, 503, 200])
    httpserver.expect_request("/readyz").respond_with_handler(lambda request: Response(status=next(answers)))
    wait_until_ready(httpserver.url_for("/readyz"), within=20)


def test_the_readiness_wait_gives_up_at_once_when_the_process_has_exited(httpserver):
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(NotReady, match="exited with 3"):
        wait_until_ready(httpserver.url_for("/never"), process, within=30)


def test_the_readiness_wait_names_the_last_answer_when_it_gives_up(httpserver):
    httpserver.expect_request("/readyz").respond_with_data("no", status=503)
    with pytest.raises(NotReady, match="HTTP 503"):
        wait_until_ready(httpserver.url_for("/readyz"), within=1)
