"""/metrics under gunicorn with several workers: one truth whichever worker answers."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ops.tests.conftest import database_url
from ops.tests.processes import NotReady, free_port, start_process, stop_process, wait_until_ready
from ops.trading import service

WORKERS = 3


def gunicorn_env(port: int, multiproc: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "gunicorn-test",
        "ALLOWED_HOSTS": "127.0.0.1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(WORKERS),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "METRICS_TOKEN": "",
    }


GUNICORN = ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"]


@pytest.fixture
def gunicorn_url(transactional_db, postgres, tmp_path, request):
    port = free_port()
    multiproc = tmp_path / "prometheus"
    log = tmp_path / "gunicorn.log"
    server = start_process(GUNICORN, gunicorn_env(port, multiproc), log)
    url = f"http://127.0.0.1:{port}"
    failed_before = request.session.testsfailed
    try:
        try:
            wait_until_ready(f"{url}/readyz", server)
        except NotReady as exc:
            pytest.fail(f"gunicorn did not start: {exc}\n" + log.read_text()[-2000:])
        yield url, multiproc
    finally:
        stop_process(server)
        if request.session.testsfailed > failed_before:
            print(f"--- gunicorn.log\n{log.read_text(errors='replace')[-6000:]}")  # shown with the failure


def scrape_value(url: str, name: str, **labels: str) -> float:
    # A new connection per scrape, so scrapes land on different workers.
    response = requests.get(f"{url}/metrics", timeout=10, headers={"Connection": "close"})
    assert response.status_code == 200, f"/metrics answered {response.status_code}: {response.text[:500]}"
    text = response.text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def spread_over_workers(url: str, batches: int) -> list[int]:
    """Send batches of WORKERS requests that each occupy a different worker.

    A sync worker that has accepted a connection blocks reading it, so while one
    request of a batch is only half sent, the next connection must be accepted by
    another worker. Without this, a fast endpoint can be served entirely by one.
    """
    host, port = url.removeprefix("http://").split(":")
    statuses = []
    for _ in range(batches):
        sockets = []
        for _ in range(WORKERS):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
            sockets.append(sock)
            time.sleep(0.02)
        for sock in sockets:
            sock.sendall(b"\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            sock.close()
            statuses.append(int(answer.split()[1]))
    return statuses


def test_request_counts_are_summed_over_all_workers(gunicorn_url):
    url, multiproc = gunicorn_url
    batches = 30
    assert set(spread_over_workers(url, batches)) == {200}
    # Every worker really served some: each wrote its own counter file.
    assert len(list(Path(multiproc).glob("counter_*.db"))) == WORKERS
    n = batches * WORKERS
    for _ in range(WORKERS * 3):
        assert scrape_value(url, "investiq_requests_total", route="healthz") == n
        assert scrape_value(url, "investiq_active_connections") == 0


def test_only_the_dashboard_request_families_reach_the_multiprocess_files(gunicorn_url):
    # Under gunicorn a family exists once any worker wrote it to its file, unlabelled
    # ones at creation: a dropped family that were still registered would show here.
    url, _ = gunicorn_url
    batches = 10
    assert set(spread_over_workers(url, batches)) == {200}
    text = requests.get(f"{url}/metrics", timeout=10).text
    families = {f.name for f in text_string_to_metric_families(text) if f.name.startswith("django_http_")}
    written = {
        "django_http_requests_total_by_view_transport_method",
        "django_http_responses_total_by_status_view_method",
        "django_http_requests_latency_seconds_by_view_method",
    }
    assert written <= families <= written | {"django_http_exceptions_total_by_type"}  # (no exception yet)
    healthz = {"view": "healthz", "method": "GET"}
    n = batches * WORKERS
    assert (
        scrape_value(url, "django_http_responses_total_by_status_view_method_total", status="200", **healthz)
        == n
    )
    assert scrape_value(url, "django_http_requests_latency_seconds_by_view_method_count", **healthz) == n


def test_a_fresh_server_exports_denials_and_errors_at_zero(gunicorn_url):
    url, _ = gunicorn_url
    assert scrape_value(url, "investiq_orders_denied_total", reason="trading_halted") == 0
    text = requests.get(f"{url}/metrics", timeout=10).text
    assert 'investiq_orders_denied_total{reason="trading_reducing"} 0.0' in text
    assert "investiq_errors_total{" in text


def test_a_halt_shows_on_the_very_next_scrape_from_any_worker(gunicorn_url):
    url, _ = gunicorn_url
    assert scrape_value(url, "investiq_trading_halted") == 0
    service.halt("global", reason="gunicorn test", actor=service.Actor.system("t", service.HALT))
    for _ in range(WORKERS * 3):
        assert scrape_value(url, "investiq_trading_halted") == 1


def test_a_second_server_on_a_taken_port_refuses_and_leaves_the_live_metrics_alone(gunicorn_url, tmp_path):
    url, multiproc = gunicorn_url
    spread_over_workers(url, 5)
    before = scrape_value(url, "investiq_requests_total", route="healthz")
    files = sorted(path.name for path in Path(multiproc).glob("*.db"))
    port = int(url.rsplit(":", 1)[1])
    second = start_process(GUNICORN, gunicorn_env(port, multiproc), tmp_path / "second.log")
    try:
        assert second.wait(timeout=30) != 0
    finally:
        stop_process(second)
    assert "already in use" in (tmp_path / "second.log").read_text()
    # Nothing of the live server's is gone. (It may have added files meanwhile: a worker
    # writes a metric's file when it first touches that metric, which the scrape above
    # can be, after the listing.)
    assert set(files) <= {path.name for path in Path(multiproc).glob("*.db")}
    assert scrape_value(url, "investiq_requests_total", route="healthz") == before


def test_the_server_opens_no_control_socket(transactional_db, postgres, tmp_path):
    """gunicorn >= 25 opens a control socket at one path per user ($XDG_RUNTIME_DIR or
    ~/.gunicorn), shared by every instance on the host: a second server takes it over and
    gunicornc would then scale or stop the wrong one. We never use it."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    port = free_port()
    env = gunicorn_env(port, tmp_path / "prometheus") | {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    server = start_process(GUNICORN, env, tmp_path / "gunicorn.log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", server)
        assert list(home.rglob("*")) == [] and list(runtime.rglob("*")) == []
    finally:
        stop_process(server)


def test_a_restart_drops_the_dead_run_s_counters(transactional_db, postgres, tmp_path):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (multiproc / f"counter_{dead.pid}.db").write_bytes(b"stale")
    port = free_port()
    server = start_process(GUNICORN, gunicorn_env(port, multiproc), tmp_path / "gunicorn.log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", server)
        assert not (multiproc / f"counter_{dead.pid}.db").exists()
    finally:
        stop_process(server)
