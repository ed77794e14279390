"""A real Prometheus and Alertmanager, with the project's rules, scraping the real app.

gunicorn runs the app on the test's Postgres database with METRICS_TOKEN set;
Prometheus reads a copy of monitoring/prometheus.yml with the targets pointed at
loopback and 1 s intervals, and the project's rule files themselves. A local HTTP
server plays Polygon, Alpaca and the ML service (their probes) and receives
Alertmanager's webhook. Which metrics exist is read from the live /metrics endpoints.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ops.health import service as health
from ops.health.models import DependencyStatus, Health
from ops.models import ApiClient
from ops.tests.conftest import database_url, start_process, stop_process
from ops.tests.monitoring_files import (
    MONITORING,
    RULE_FILES,
    alert_rules,
    dashboard,
    recording_rules,
    runnable_copy,
    substitute_grafana_variables,
    tool,
)
from ops.tests.test_metrics_gunicorn import free_port
from ops.trading import service as kill_switch

METRICS_TOKEN = "live-metrics-token"
WEBHOOK_TOKEN = "live-webhook-token"
WEBHOOK_PATH = "/api/v1/alerts/alertmanager"
# Prometheus holds target discovery back ~5 s after start; everything else is faster.
WAIT_SECONDS = 20
SCRAPE_SECONDS = 1


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    """Poll check() until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        # Slow first answers (a worker still importing Django) are ReadTimeouts, not
        # only refused connections: keep polling on any request error.
        except requests.RequestException as exc:
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last: {last!r:.2000}")
        time.sleep(0.3)


def started(args: list[str], log: Path) -> subprocess.Popen:
    """A binary in its own process group (stop_process ends the whole group)."""
    with log.open("w") as output:
        return subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


@dataclass
class Stack:
    app: str
    prometheus: str
    alertmanager: str
    ml: str
    webhook_requests: Callable[[], list]

    def api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.prometheus}/api/v1/{path}", params=params, timeout=5)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def exported(self, url: str, token: str | None = None) -> set[str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        text = requests.get(f"{url}/metrics", headers=headers, timeout=5).text
        return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def prometheus_config(copy: Path, ports: dict[str, str]) -> Path:
    """The project's prometheus.yml with loopback targets and 1 s intervals."""
    config = yaml.safe_load((copy / "prometheus.yml").read_text())
    interval = f"{SCRAPE_SECONDS}s"
    config["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
    for job in config["scrape_configs"]:
        job.update(scrape_interval=interval, scrape_timeout=interval)
        job["static_configs"] = [{"targets": [ports[job["job_name"]]]}]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [ports["alertmanager"]]}]}]
    # The project's rule files themselves, not copies.
    config["rule_files"] = [str(MONITORING / name) for name in config["rule_files"]]
    path = copy / "prometheus-live.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def alertmanager_config(copy: Path, webhook_base: str) -> Path:
    """The project's alertmanager.yml, delivering to the local webhook without waiting."""
    text = (copy / "alertmanager.yml").read_text().replace("http://web:8000", webhook_base)
    config = yaml.safe_load(text)
    for route in [config["route"], *config["route"]["routes"]]:
        route["group_wait"] = "1s"
    path = copy / "alertmanager-live.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def stack(transactional_db, postgres, redis_url, settings, httpserver, tmp_path) -> Iterator[Stack]:
    prometheus_bin, alertmanager_bin = tool("prometheus"), tool("prometheus-alertmanager")
    # The fakes of the external dependencies (the probes call them) and the receiver of
    # Alertmanager's webhook.
    httpserver.expect_request("/v1/marketstatus/now").respond_with_json({"market": "open"})
    httpserver.expect_request("/v2/clock").respond_with_json({"is_open": True})
    httpserver.expect_request("/health").respond_with_json({"status": "ok"})
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_json({"stored": True})
    base = httpserver.url_for("/").rstrip("/")
    settings.POLYGON_BASE_URL, settings.POLYGON_API_KEY = base, "poly-key"
    settings.ALPACA_BASE_URL, settings.ALPACA_KEY_ID, settings.ALPACA_SECRET_KEY = base, "key-id", "secret"
    settings.ML_SERVICE_URL = base
    settings.REDIS_URL = redis_url
    settings.TRADING_TWO_PERSON_RESUME = False

    ports = {name: f"127.0.0.1:{free_port()}" for name in ("investiq-api", "prometheus", "alertmanager")}
    copy = runnable_copy(
        tmp_path, {"metrics_token": METRICS_TOKEN, "alertmanager_webhook_token": WEBHOOK_TOKEN}
    )
    processes: list[subprocess.Popen] = []
    try:
        processes.append(
            start_process(
                ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"],
                {
                    "DATABASE_URL": database_url(),
                    "SECRET_KEY": "monitoring-live-test",
                    "ALLOWED_HOSTS": "127.0.0.1",
                    "GUNICORN_BIND": ports["investiq-api"],
                    "WEB_CONCURRENCY": "2",
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc"),
                    "METRICS_TOKEN": METRICS_TOKEN,
                    # The statuses recorded below must stay fresh (not UNKNOWN) for the
                    # whole test, however slow a loaded machine makes it.
                    "PROBE_INTERVAL_SECONDS": "300",
                },
                tmp_path / "gunicorn.log",
            )
        )
        processes.append(
            started(
                [
                    alertmanager_bin,
                    f"--config.file={alertmanager_config(copy, base)}",
                    f"--storage.path={tmp_path / 'alertmanager-data'}",
                    f"--web.listen-address={ports['alertmanager']}",
                    "--cluster.listen-address=",  # no gossip port on every interface
                ],
                tmp_path / "alertmanager.log",
            )
        )
        processes.append(
            started(
                [
                    prometheus_bin,
                    f"--config.file={prometheus_config(copy, ports)}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                    f"--web.listen-address={ports['prometheus']}",
                    # The Watchdog fires at the first evaluation, before Prometheus has
                    # discovered Alertmanager, and is re-sent only after this (default 1m).
                    "--rules.alert.resend-delay=1s",
                ],
                tmp_path / "prometheus.log",
            )
        )
        stack = Stack(
            app=f"http://{ports['investiq-api']}",
            prometheus=f"http://{ports['prometheus']}",
            alertmanager=f"http://{ports['alertmanager']}",
            ml=base,
            webhook_requests=lambda: [r for r, _ in httpserver.log if r.path == WEBHOOK_PATH],
        )
        wait_for("the app", lambda: requests.get(f"{stack.app}/readyz", timeout=3).status_code == 200)
        wait_for("Prometheus", lambda: requests.get(f"{stack.prometheus}/-/ready", timeout=3).ok)
        wait_for("Alertmanager", lambda: requests.get(f"{stack.alertmanager}/-/ready", timeout=3).ok)
        # Every dependency probed for real (Postgres, Redis, the fakes) and recorded.
        results = health.check_now()
        assert {r.name: r.status for r in results} == dict.fromkeys(
            ("database", "redis", "polygon", "alpaca", "ml_service"), Health.UP
        )
        wait_for("every target up", lambda: all_targets_up(stack))
        yield stack
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    finally:
        for process in reversed(processes):
            stop_process(process)


def all_targets_up(stack: Stack) -> bool:
    targets = stack.api("targets", state="active")["activeTargets"]
    jobs = {t["labels"]["job"] for t in targets}
    return jobs == {"investiq-api", "prometheus", "alertmanager"} and all(
        t["health"] == "up" for t in targets
    )


def light_load(stack: Stack) -> None:
    """A few requests of every kind a quiet trading day sends."""
    _, token = ApiClient.issue("live-test-engine")
    headers = {"Authorization": f"Bearer {token}"}
    for index in range(5):
        payload = {
            "client_order_id": f"live-{index}",
            "symbol": "AAPL",
            "side": "buy" if index % 2 else "sell",
            "quantity": "1",
            "price": "228.50",
        }
        assert (
            requests.post(f"{stack.app}/api/v1/trades", json=payload, headers=headers, timeout=5).status_code
            == 201
        )
        analysis = {"symbol": "AAPL", "signal": "hold", "confidence": "0.5", "model_version": "m1"}
        assert (
            requests.post(
                f"{stack.app}/api/v1/analyses", json=analysis, headers=headers, timeout=5
            ).status_code
            == 201
        )
        assert (
            requests.get(f"{stack.app}/api/v1/trading/status", headers=headers, timeout=5).status_code == 200
        )
        assert requests.get(f"{stack.app}/healthz", timeout=5).status_code == 200


def query_result(stack: Stack, target: dict) -> list:
    expr = substitute_grafana_variables(target["expr"], SCRAPE_SECONDS)
    if target.get("instant"):
        return stack.api("query", query=expr)["result"]
    now = time.time()
    return stack.api("query_range", query=expr, start=now - 10, end=now, step=SCRAPE_SECONDS)["result"]


def referenced_metrics(expr: str) -> set[str]:
    """Exported metric names an expression reads (recording-rule names excluded)."""
    # Not preceded or followed by ":" — job:investiq_errors:rate5m is a recording rule.
    names = set(re.findall(r"(?<![\w:])((?:investiq|prometheus|alertmanager)_\w+)(?![\w:])", expr))
    return names | ({"up"} if re.search(r"\bup\{", expr) else set())


def test_prometheus_evaluates_every_panel_and_rule_against_the_live_app(stack):
    light_load(stack)
    # The last-drill series have samples once a drill has run (a stock install that never
    # drilled has none, so KillSwitchDrillOverdue cannot fire there): a passed drill's
    # record, not a drill itself, whose brief halt a scrape could catch and alert on.
    from django.utils import timezone

    from ops.drill.models import DrillRun, Outcome

    DrillRun.objects.create(
        started_by="live-test", origin="test", outcome=Outcome.PASSED, ended_at=timezone.now()
    )

    # Every metric a panel or rule reads is exported by the live app, Prometheus or
    # Alertmanager (histograms by their _bucket series).
    exported = (
        stack.exported(stack.app, METRICS_TOKEN)
        | stack.exported(stack.prometheus)
        | stack.exported(stack.alertmanager)
        | {"up"}
    )
    expressions = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    expressions += [r["expr"] for r in alert_rules() + recording_rules()]
    missing = {name for expr in expressions for name in referenced_metrics(expr)} - exported
    assert not missing, f"read by panels or rules but exported by nothing: {sorted(missing)}"

    # Every panel query (Grafana variables substituted) is valid and returns data.
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            wait_for(
                f"data for panel {panel['title']!r} {target['refId']}",
                lambda t=target: query_result(stack, t),
            )

    # The project's rule files are loaded, and every rule evaluates without error.
    def evaluated_rules() -> dict[str, dict] | None:
        rules = {
            r["name"]: r for g in stack.api("rules")["groups"] for r in g["rules"] if r.get("lastEvaluation")
        }
        return rules if len(rules) == len(alert_rules()) + len(recording_rules()) else None

    time.sleep(2 * SCRAPE_SECONDS)  # let every group evaluate after the first scrapes
    rules = wait_for("every rule evaluated", evaluated_rules)
    assert {r["alert"] for r in alert_rules()} | {r["record"] for r in recording_rules()} == set(rules)
    assert {name: r["health"] for name, r in rules.items() if r["health"] != "ok"} == {}
    files = {g["file"] for g in stack.api("rules")["groups"]}
    assert files == {str(MONITORING / name) for name in RULE_FILES}
    for rule in alert_rules() + recording_rules():
        stack.api("query", query=rule["expr"])  # asserts status "success"

    # The SLO ratios and request rates have data on a live, healthy app.
    assert stack.api("query", query="job:investiq_requests:rate5m")["result"]
    assert stack.api("query", query='job:investiq_errors:rate5m{job="investiq-api"} == 0')["result"]

    # A healthy app under light load raises nothing, not even a pending alert, but the
    # Watchdog, which Alertmanager delivers alone to the console (receiver console-heartbeat).
    assert [a["labels"]["alertname"] for a in stack.alerts()] == ["Watchdog"]
    deliveries = wait_for("the Watchdog's delivery", stack.webhook_requests)
    assert {d.get_json()["receiver"] for d in deliveries} == {"console-heartbeat"}
    assert {a["labels"]["alertname"] for d in deliveries for a in d.get_json()["alerts"]} == {"Watchdog"}


def pages(stack: Stack) -> list:
    """The webhook deliveries other than the Watchdog's heartbeat."""
    return [r for r in stack.webhook_requests() if r.get_json()["receiver"] != "console-heartbeat"]


def test_a_halt_fires_circuit_breaker_tripped_and_a_resume_clears_it(stack):
    actor = kill_switch.Actor.system("live-test", kill_switch.HALT, kill_switch.RESUME)
    trading_status = next(p for p in dashboard()["panels"] if p["title"] == "Trading Status")["targets"][0]
    assert [r["value"][1] for r in query_result(stack, trading_status)] == ["0"]

    kill_switch.halt("global", reason="live monitoring test", actor=actor)
    firing = wait_for(
        "CircuitBreakerTripped firing",
        lambda: [a for a in stack.alerts() if a["labels"]["alertname"] == "CircuitBreakerTripped"],
    )
    assert [(a["state"], a["labels"]["severity"], a["labels"]["job"]) for a in firing] == [
        ("firing", "critical", "investiq-api")
    ]
    assert [r["value"][1] for r in query_result(stack, trading_status)] == ["2"]  # HALTED
    # Alertmanager delivered it to the console's webhook path, with the token file's token.
    (delivery, *_) = wait_for("the webhook notification", lambda: pages(stack))
    assert delivery.headers["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    body = delivery.get_json()
    assert body["version"] == "4" and body["receiver"] == "console"
    assert [a["labels"]["alertname"] for a in body["alerts"]] == ["CircuitBreakerTripped"]

    kill_switch.resume("global", reason="live monitoring test done", actor=actor)
    wait_for(
        "CircuitBreakerTripped to clear",
        lambda: not [a for a in stack.alerts() if a["labels"]["alertname"] == "CircuitBreakerTripped"],
    )
    assert DependencyStatus.objects.filter(status=Health.UP).count() == 5
