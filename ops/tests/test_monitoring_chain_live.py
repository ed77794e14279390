"""The monitoring chain as shipped, and its dead man's switch, with every part real.

1. The stock topology: the project's prometheus.yml and alertmanager.yml unchanged but
   for the compose hostnames mapped to local ports (web, alertmanager, localhost:9090),
   stock intervals, no ML service, Polygon or Alpaca configured (compose's and `make
   run`'s defaults), the probes run as beat runs them. Nothing may fire or even be
   pending but the Watchdog, whose deliveries reach the app as its heartbeat.
2. In a real browser: stopping Alertmanager makes the console say MONITORING SILENT at
   the top within MONITORING_HEARTBEAT_MAX_AGE_SECONDS + one refresh, check_monitoring
   FAILs naming the heartbeat, and restarting Alertmanager clears it.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml
from django.db import connection
from playwright.sync_api import Page, expect

from ops.alerts.models import Alert, Heartbeat
from ops.health import service as health
from ops.models import ApiClient
from ops.monitoring.chain.runtime import Urls, heartbeat
from ops.tests.conftest import database_url, make_user, start_process, stop_process
from ops.tests.monitoring_files import runnable_copy, tool
from ops.tests.processes import free_port
from ops.tests.test_console_browser import (  # noqa: F401 (fixtures)
    allow_sync_orm_beside_playwright,
    browser_type_launch_args,
    log_in,
)
from ops.tests.test_monitoring_live import alertmanager_config, prometheus_config, started, wait_for

METRICS_TOKEN = "stock-metrics-token"
# The stock prometheus.yml scrapes and evaluates every 10 s; allow a few rounds.
STOCK_WAIT = 90


@dataclass
class Chain:
    app: str
    prometheus: str
    alertmanager: str
    reader_token: str

    def prometheus_api(self, path: str, **params) -> dict:
        body = requests.get(f"{self.prometheus}/api/v1/{path}", params=params, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]


def stock_prometheus_yml(copy: Path, hosts: dict[str, str]) -> Path:
    """The shipped prometheus.yml with each compose host:port replaced by a local one,
    and nothing else changed (its rule files are the copy's, identical to the project's)."""
    text = (copy / "prometheus.yml").read_text()
    for host, local in hosts.items():
        text = text.replace(f'"{host}"', f'"{local}"')
    assert not re.search(r'"(web|alertmanager):\d+"|"localhost:9090"', text), text
    path = copy / "prometheus-stock.yml"
    path.write_text(text)
    return path


def probing_like_beat(stop: threading.Event, interval: float = 5.0) -> threading.Thread:
    """What compose's beat and worker do (PROBE_INTERVAL_SECONDS): probe and record."""

    def run() -> None:
        try:
            while not stop.is_set():
                health.check_now()
                stop.wait(interval)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def stock_chain(transactional_db, postgres, redis_url, settings, tmp_path) -> Iterator[Chain]:
    prometheus_bin, alertmanager_bin = tool("prometheus"), tool("prometheus-alertmanager")
    # The stock topology: nothing configured but the database and Redis.
    settings.REDIS_URL = redis_url
    settings.ML_SERVICE_URL = settings.POLYGON_API_KEY = settings.ALPACA_KEY_ID = ""
    _, webhook_token = ApiClient.issue("alertmanager", "alerts")
    _, reader_token = ApiClient.issue("console-reader", "status")
    ports = {name: f"127.0.0.1:{free_port()}" for name in ("web", "prometheus", "alertmanager")}
    copy = runnable_copy(
        tmp_path, {"metrics_token": METRICS_TOKEN, "alertmanager_webhook_token": webhook_token}
    )
    prometheus_yml = stock_prometheus_yml(
        copy,
        {
            "web:8000": ports["web"],
            "alertmanager:9093": ports["alertmanager"],
            "localhost:9090": ports["prometheus"],
        },
    )
    alertmanager_yml = copy / "alertmanager-stock.yml"
    alertmanager_yml.write_text(
        (copy / "alertmanager.yml").read_text().replace("http://web:8000", f"http://{ports['web']}")
    )
    stop = threading.Event()
    processes = []
    try:
        processes.append(
            start_process(
                ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"],
                {
                    "DATABASE_URL": database_url(),
                    "REDIS_URL": redis_url,
                    "SECRET_KEY": "stock-chain-test",
                    "ALLOWED_HOSTS": "127.0.0.1",
                    "GUNICORN_BIND": ports["web"],
                    "WEB_CONCURRENCY": "2",
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc"),
                    "METRICS_TOKEN": METRICS_TOKEN,
                },
                tmp_path / "gunicorn.log",
            )
        )
        processes.append(
            started(
                [
                    alertmanager_bin,
                    f"--config.file={alertmanager_yml}",
                    f"--storage.path={tmp_path / 'alertmanager-data'}",
                    f"--web.listen-address={ports['alertmanager']}",
                    "--cluster.listen-address=",
                ],
                tmp_path / "alertmanager.log",
            )
        )
        processes.append(
            started(
                [
                    prometheus_bin,
                    f"--config.file={prometheus_yml}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                    f"--web.listen-address={ports['prometheus']}",
                ],
                tmp_path / "prometheus.log",
            )
        )
        chain = Chain(
            app=f"http://{ports['web']}",
            prometheus=f"http://{ports['prometheus']}",
            alertmanager=f"http://{ports['alertmanager']}",
            reader_token=reader_token,
        )
        wait_for("the app", lambda: requests.get(f"{chain.app}/readyz", timeout=3).status_code == 200, 60)
        probing_like_beat(stop)
        yield chain
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    finally:
        stop.set()
        for process in reversed(processes):
            stop_process(process)


def prometheus_time(chain: Chain) -> float:
    return float(chain.prometheus_api("query", query="time()")["result"][0])


def evaluated_since(chain: Chain, since: float) -> bool:
    """Every rule group has been evaluated after `since` (Prometheus's clock)."""
    groups = chain.prometheus_api("rules")["groups"]
    return bool(groups) and all(_seconds(group["lastEvaluation"]) > since for group in groups)


def _seconds(rfc3339: str) -> float:
    # Prometheus writes nanoseconds; Python reads up to microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).astimezone(UTC).timestamp()


def test_the_stock_topology_raises_nothing_but_the_watchdog(stock_chain):
    chain = stock_chain

    def targets_up() -> bool:
        targets = chain.prometheus_api("targets", state="active")["activeTargets"]
        return {t["labels"]["job"] for t in targets} == {
            "investiq-api",
            "prometheus",
            "alertmanager",
        } and all(t["health"] == "up" for t in targets)

    wait_for("every stock target up", targets_up, STOCK_WAIT)
    # The Watchdog travelled Prometheus -> Alertmanager -> the app's webhook.
    wait_for("the Watchdog's heartbeat at the app", lambda: Heartbeat.objects.exists(), STOCK_WAIT)
    # Two evaluations of every group after every target was up and scraped: any rule
    # true on this topology is pending (or firing) by then.
    since = prometheus_time(chain)
    wait_for("a rule evaluation after the scrapes", lambda: evaluated_since(chain, since), STOCK_WAIT)
    since = prometheus_time(chain)
    wait_for("a second rule evaluation", lambda: evaluated_since(chain, since), STOCK_WAIT)

    alerts = chain.prometheus_api("alerts")["alerts"]
    assert [(a["labels"]["alertname"], a["state"]) for a in alerts] == [("Watchdog", "firing")]
    in_alertmanager = requests.get(f"{chain.alertmanager}/api/v2/alerts", timeout=5).json()
    assert [a["labels"]["alertname"] for a in in_alertmanager] == ["Watchdog"]
    # Nothing stored as an alert; the chain reported connected through the API.
    assert Alert.objects.count() == 0
    body = requests.get(
        f"{chain.app}/api/v1/alerts",
        headers={"Authorization": f"Bearer {chain.reader_token}"},
        timeout=5,
    ).json()
    assert body["alerts"] == [] and body["monitoring"]["state"] == "connected"


# --- The dead man's switch in the browser -------------------------------------------------

MAX_AGE_SECONDS = 4
REFRESH_SECONDS = 5  # console.js's live refresh


def start_alertmanager(config: Path, tmp_path: Path, address: str) -> subprocess.Popen:
    return started(
        [
            tool("prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address={address}",
            "--cluster.listen-address=",
        ],
        tmp_path / "alertmanager.log",
    )


def test_a_stopped_alertmanager_shows_monitoring_silent_until_it_is_back(
    live_server, page: Page, settings, tmp_path
):
    settings.MONITORING_HEARTBEAT_MAX_AGE_SECONDS = MAX_AGE_SECONDS
    prometheus_bin = tool("prometheus")
    make_user("olga", "ops_operator")
    _, webhook_token = ApiClient.issue("alertmanager", "alerts")
    ports = {name: f"127.0.0.1:{free_port()}" for name in ("prometheus", "alertmanager")}
    ports["investiq-api"] = live_server.url.removeprefix("http://")
    copy = runnable_copy(tmp_path, {"alertmanager_webhook_token": webhook_token})
    alertmanager_yml = alertmanager_config(copy, live_server.url)
    config = yaml.safe_load(alertmanager_yml.read_text())
    watchdog_route = config["route"]["routes"][0]
    assert watchdog_route["receiver"] == "console-heartbeat"
    # A heartbeat every second, so that a 4 s max age is a fair test of "silent".
    watchdog_route.update(group_interval="1s", repeat_interval="1s")
    alertmanager_yml.write_text(yaml.safe_dump(config))
    processes = {}
    try:
        processes["alertmanager"] = start_alertmanager(alertmanager_yml, tmp_path, ports["alertmanager"])
        processes["prometheus"] = started(
            [
                prometheus_bin,
                f"--config.file={prometheus_config(copy, ports)}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address={ports['prometheus']}",
                # Prometheus re-sends firing alerts this often (1m by default): a restarted
                # Alertmanager learns of the Watchdog again within it.
                "--rules.alert.resend-delay=1s",
            ],
            tmp_path / "prometheus.log",
        )
        log_in(page, live_server, "olga")
        chain = page.get_by_test_id("monitoring-chain")
        wait_ms = (MAX_AGE_SECONDS + REFRESH_SECONDS + 20) * 1000
        expect(chain).to_contain_text("Monitoring: connected, last heartbeat", timeout=60_000)

        stop_process(processes.pop("alertmanager"))
        silent = page.get_by_test_id("monitoring-chain").filter(has_text="MONITORING SILENT")
        expect(silent).to_be_visible(timeout=wait_ms)
        # At the top of the page: above the global state.
        silent_box, state_box = silent.bounding_box(), page.get_by_test_id("global-state").bounding_box()
        assert silent_box["y"] < state_box["y"]
        (result,) = list(heartbeat(Urls("", "", "", "")))
        assert result.status == "FAIL" and "Watchdog heartbeat" in result.detail

        processes["alertmanager"] = start_alertmanager(alertmanager_yml, tmp_path, ports["alertmanager"])
        expect(chain).to_contain_text("Monitoring: connected, last heartbeat", timeout=60_000)
        expect(page.get_by_text("MONITORING SILENT")).to_have_count(0)
        (result,) = list(heartbeat(Urls("", "", "", "")))
        assert result.status == "PASS"
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    finally:
        for process in processes.values():
            stop_process(process)
