"""The whole alert loop, end to end, with every part real.

gunicorn serves the app on the test's Postgres; a Celery worker and beat on Redis run
the dependency probes; a real Prometheus scrapes the app with the project's
prometheus.yml (targets on loopback, 1 s intervals) and its rules (MLServiceDown's
`for` shortened; the shipped 5 m is held by its promtool unit test); a real
Alertmanager delivers, with the project's alertmanager.yml, to the app's own webhook
with an `alerts`-scoped token. The ML service is a local HTTP server answering /health
(only the app's probe talks to it), which the test stops. Then `check_monitoring` runs
against the live stack.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from django.core.management import CommandError, call_command
from pytest_httpserver import HTTPServer

from ops.alerts.models import Heartbeat
from ops.health.models import DependencyStatus, Health
from ops.models import ApiClient
from ops.monitoring.chain.runtime import WEBHOOK_FAILURES
from ops.tests.conftest import celery_worker, database_url, start_process, stop_process
from ops.tests.monitoring_files import MONITORING, runnable_copy, tool
from ops.tests.processes import free_port
from ops.tests.test_monitoring_live import (
    alertmanager_config,
    prometheus_config,
    started,
    wait_for,
)
from ops.trading import service as kill_switch

METRICS_TOKEN = "loop-metrics-token"
PROBE_INTERVAL = 5  # seconds; the cycle (at most 1.05 s) stays inside the task's soft limit


@dataclass
class Loop:
    app: str
    prometheus: str
    alertmanager: str
    reader_token: str
    ml_service: HTTPServer
    processes: dict
    copy: Path

    def alerts(self, status: str = "all") -> list[dict]:
        response = requests.get(
            f"{self.app}/api/v1/alerts",
            params={"status": status},
            headers={"Authorization": f"Bearer {self.reader_token}"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return response.json()["alerts"]

    def alert(self, alertname: str, status: str, **labels: str) -> list[dict]:
        return [
            alert
            for alert in self.alerts(status)
            if alert["alertname"] == alertname and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]


def shortened_rules(copy: Path) -> Path:
    """The alert rules with MLServiceDown after 2 s instead of 5 min, beside the copy's
    own: check_monitoring runs the unit tests on the copy, which hold the shipped 5 min."""
    rules = yaml.safe_load((copy / "alert_rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "MLServiceDown":
                rule["for"] = "2s"
    path = copy / "alert_rules-shortened.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@pytest.fixture
def loop(transactional_db, postgres, redis_url, settings, tmp_path) -> Iterator[Loop]:
    prometheus_bin, alertmanager_bin = tool("prometheus"), tool("prometheus-alertmanager")
    ml_service = HTTPServer(host="127.0.0.1", port=free_port())
    ml_service.expect_request("/health").respond_with_json({"status": "ok"})
    ml_service.start()

    _, webhook_token = ApiClient.issue("alertmanager", "alerts")
    _, reader_token = ApiClient.issue("console-reader", "status")
    ports = {name: f"127.0.0.1:{free_port()}" for name in ("investiq-api", "prometheus", "alertmanager")}
    app = f"http://{ports['investiq-api']}"
    copy = runnable_copy(
        tmp_path, {"metrics_token": METRICS_TOKEN, "alertmanager_webhook_token": webhook_token}
    )
    # check_monitoring reads this copy (MONITORING_DIR): it needs the dashboard too.
    shutil.copytree(MONITORING / "grafana", copy / "grafana")
    shortened = shortened_rules(copy)
    prometheus_yml = prometheus_config(copy, ports)
    # Prometheus reads the shortened alert rules, not the project's files.
    config = yaml.safe_load(prometheus_yml.read_text())
    config["rule_files"] = [
        str(shortened if Path(name).name == "alert_rules.yml" else copy / Path(name).name)
        for name in config["rule_files"]
    ]
    prometheus_yml.write_text(yaml.safe_dump(config))
    alertmanager_yml = alertmanager_config(copy, app)
    am = yaml.safe_load(alertmanager_yml.read_text())
    for route in [am["route"], *am["route"]["routes"]]:
        route.update(group_interval="1s", repeat_interval="1m")  # resolved notices without delay
    alertmanager_yml.write_text(yaml.safe_dump(am))

    queue = f"loop-{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "SECRET_KEY": "alert-loop-test",
        "ALLOWED_HOSTS": "127.0.0.1",
        "METRICS_TOKEN": METRICS_TOKEN,
        "ML_SERVICE_URL": f"http://127.0.0.1:{ml_service.port}",
        "PROBE_INTERVAL_SECONDS": str(PROBE_INTERVAL),
        "PROBE_CONNECT_TIMEOUT": "0.5",
        "PROBE_READ_TIMEOUT": "1",
        "TRADING_TWO_PERSON_RESUME": "false",
    }
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.PROBE_INTERVAL_SECONDS = PROBE_INTERVAL
    settings.MONITORING_DIR = copy
    settings.TRADING_TWO_PERSON_RESUME = False
    processes = {}
    try:
        processes["gunicorn"] = start_process(
            ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"],
            {
                **env,
                "GUNICORN_BIND": ports["investiq-api"],
                "WEB_CONCURRENCY": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc"),
            },
            tmp_path / "gunicorn.log",
        )
        processes["worker"] = start_process(celery_worker(queue), env, tmp_path / "worker.log")
        processes["beat"] = start_process(
            [
                "celery",
                "-A",
                "investiq",
                "beat",
                "--loglevel=INFO",
                f"--schedule={tmp_path / 'beat-schedule'}",
            ],
            env,
            tmp_path / "beat.log",
        )
        processes["alertmanager"] = started(
            [
                alertmanager_bin,
                f"--config.file={alertmanager_yml}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address={ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
            tmp_path / "alertmanager.log",
        )
        processes["prometheus"] = started(
            [
                prometheus_bin,
                f"--config.file={prometheus_yml}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address={ports['prometheus']}",
                # The Watchdog fires at the first evaluation, before Prometheus has
                # discovered Alertmanager, and is re-sent only after this (1m by default).
                "--rules.alert.resend-delay=1s",
            ],
            tmp_path / "prometheus.log",
        )
        loop = Loop(
            app=app,
            prometheus=f"http://{ports['prometheus']}",
            alertmanager=f"http://{ports['alertmanager']}",
            reader_token=reader_token,
            ml_service=ml_service,
            processes=processes,
            copy=copy,
        )
        wait_for("the app", lambda: requests.get(f"{app}/readyz", timeout=3).status_code == 200, timeout=60)
        wait_for("Prometheus", lambda: requests.get(f"{loop.prometheus}/-/ready", timeout=3).ok)
        wait_for("Alertmanager", lambda: requests.get(f"{loop.alertmanager}/-/ready", timeout=3).ok)
        # The beat's probes, run by the worker, found the ML service healthy.
        wait_for(
            "the beat's first probe cycle",
            lambda: DependencyStatus.objects.filter(name="ml_service", status=Health.UP).exists(),
            timeout=60,
        )
        yield loop
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    finally:
        for process in reversed(processes.values()):
            stop_process(process)
        if ml_service.is_running():
            ml_service.stop()


def check_monitoring(loop: Loop, **overrides: str) -> str:
    urls = {
        "prometheus_url": loop.prometheus,
        "alertmanager_url": loop.alertmanager,
        "app_url": loop.app,
        "grafana_url": "",
        **overrides,
    }
    from io import StringIO

    out = StringIO()
    try:
        call_command("check_monitoring", stdout=out, **urls)
    except CommandError as exc:
        return out.getvalue() + f"\nCommandError: {exc}"
    return out.getvalue()


def test_halt_and_resume_and_a_dead_ml_service_travel_the_whole_loop(loop):
    actor = kill_switch.Actor.system("loop-test", kill_switch.HALT, kill_switch.RESUME)
    wait_for("every target up", lambda: _all_targets_up(loop))
    # What check_monitoring reads, and a fresh Prometheus lacks at first: two samples of
    # Alertmanager's failure counter (increase() needs them), and the Watchdog's heartbeat.
    wait_for("two samples of the webhook failure counter", lambda: _answers(loop, WEBHOOK_FAILURES))
    wait_for("the Watchdog's heartbeat", lambda: Heartbeat.objects.exists())

    # The chain is complete and alive, so check_monitoring passes (Grafana is SKIPped).
    report = check_monitoring(loop)
    assert "CommandError" not in report and not re.search(r"^WARN", report, re.MULTILINE), report
    assert "SKIP  Grafana healthy" in report
    assert "PASS  Watchdog heartbeat reaches the console" in report
    assert "PASS  Alertmanager delivers to the console webhook" in report
    # The Watchdog is a heartbeat, never an alert in the store.
    assert loop.alert("Watchdog", "all") == []

    # A halt: rule -> Alertmanager -> the app's webhook -> the alert store.
    kill_switch.halt("global", reason="alert loop test", actor=actor)
    (firing,) = wait_for(
        "CircuitBreakerTripped in the store", lambda: loop.alert("CircuitBreakerTripped", "firing"), 30
    )
    assert firing["severity"] == "critical" and firing["runbook_url"].endswith("#circuitbreakertripped")

    # A resume resolves it, in the same row.
    kill_switch.resume("global", reason="alert loop test over", actor=actor)
    (resolved,) = wait_for(
        "CircuitBreakerTripped resolved", lambda: loop.alert("CircuitBreakerTripped", "resolved"), 30
    )
    assert resolved["starts_at"] == firing["starts_at"] and resolved["ends_at"]
    assert loop.alert("CircuitBreakerTripped", "firing") == []

    # The ML service stops answering: the beat's probe marks it down, its alert fires.
    loop.ml_service.stop()
    wait_for(
        "the probe to record the ML service down",
        lambda: DependencyStatus.objects.filter(name="ml_service", status=Health.DOWN).exists(),
        timeout=4 * PROBE_INTERVAL,
    )
    (down,) = wait_for("MLServiceDown", lambda: loop.alert("MLServiceDown", "firing"), 30)
    assert down["severity"] == "warning" and down["labels"]["name"] == "ml_service"
    # Raised once: DependencyDown leaves the ML service to MLServiceDown.
    assert loop.alert("DependencyDown", "all", name="ml_service") == []


def _answers(loop: Loop, expr: str) -> list:
    body = requests.get(f"{loop.prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    return body["data"]["result"]


def _query(loop: Loop, expr: str) -> float:
    body = requests.get(f"{loop.prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _all_targets_up(loop: Loop) -> bool:
    body = requests.get(f"{loop.prometheus}/api/v1/targets", params={"state": "active"}, timeout=5).json()
    targets = body["data"]["activeTargets"]
    return len(targets) == 3 and all(target["health"] == "up" for target in targets)


def test_check_monitoring_fails_clearly_on_a_wrong_token_a_broken_rule_and_a_stopped_prometheus(
    loop, settings
):
    wait_for("every target up", lambda: _all_targets_up(loop))

    settings.METRICS_TOKEN = "not-the-token"
    report = check_monitoring(loop)
    assert "FAIL  app /metrics exposes the metric contract" in report
    assert "credentials refused" in report and "METRICS_TOKEN" in report
    settings.METRICS_TOKEN = METRICS_TOKEN

    # Alertmanager holds a token the app refuses: every webhook delivery fails (401).
    (loop.copy.parent / "secrets" / "alertmanager_webhook_token").write_text("not-an-alerts-token\n")
    kill_switch.halt("global", reason="loop test", actor=kill_switch.Actor.system("t", kill_switch.HALT))
    wait_for(
        "a failed webhook delivery counted by Prometheus",
        lambda: _query(loop, WEBHOOK_FAILURES) > 0,
        timeout=30,
    )
    report = check_monitoring(loop)
    assert "FAIL  Alertmanager delivers to the console webhook" in report
    assert "ALERTMANAGER_WEBHOOK_TOKEN" in report

    broken = loop.copy / "alert_rules.yml"
    broken.write_text(broken.read_text().replace("for: 2m", "for: 2 minutes", 1))
    report = check_monitoring(loop)
    assert "FAIL  promtool check rules" in report and "alert_rules.yml" in report
    assert "Traceback" not in report

    stop_process(loop.processes["prometheus"])
    report = check_monitoring(loop)
    assert "FAIL  Prometheus ready" in report and "Connection refused" in report
    assert "CommandError" in report and "Traceback" not in report
