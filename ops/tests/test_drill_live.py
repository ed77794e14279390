"""The drill through the real chain: gunicorn on the test's Postgres, a real Prometheus
with the project's prometheus.yml and rules (1 s intervals, loopback targets), a real
Alertmanager with the project's alertmanager.yml delivering to the app's own webhook.

The drill runs in the test's process, as `manage.py drill` would, with DRILL_ALERTS on.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from ops.alerts.models import Alert
from ops.drill.models import DrillRun
from ops.drill.service import DRILL_ALERT, STALE_RUN_SECONDS
from ops.models import ApiClient
from ops.tests.conftest import database_url, start_process, stop_process
from ops.tests.monitoring_files import runnable_copy, tool
from ops.tests.processes import free_port
from ops.tests.test_monitoring_live import alertmanager_config, prometheus_config, started, wait_for
from ops.trading.models import DRILL_SCOPE, State, TradingState
from ops.trading.service import RUN_DRILL, Actor, drill_transition

METRICS_TOKEN = "drill-metrics-token"


@dataclass
class Chain:
    app: str
    prometheus: str
    alertmanager: str


def good_token() -> str:
    return ApiClient.issue("alertmanager", "alerts")[1]


@pytest.fixture
def chain(request, transactional_db, postgres, settings, tmp_path) -> Iterator[Chain]:
    prometheus_bin, alertmanager_bin = tool("prometheus"), tool("prometheus-alertmanager")
    webhook_token = good_token() if request.param == "right token" else "not-a-token-of-this-app"
    ports = {name: f"127.0.0.1:{free_port()}" for name in ("investiq-api", "prometheus", "alertmanager")}
    # The stock topology has an ML service job; here nothing listens on its port.
    ports["ml-service"] = f"127.0.0.1:{free_port()}"
    app = f"http://{ports['investiq-api']}"
    copy = runnable_copy(
        tmp_path, {"metrics_token": METRICS_TOKEN, "alertmanager_webhook_token": webhook_token}
    )
    settings.DRILL_ALERTS = True
    settings.APP_URL = app
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.PROMETHEUS_URL = f"http://{ports['prometheus']}"
    settings.ALERTMANAGER_URL = f"http://{ports['alertmanager']}"
    settings.DRILL_ALERT_TIMEOUT_SECONDS = 30
    processes: list[subprocess.Popen] = []
    try:
        processes.append(
            start_process(
                ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"],
                {
                    "DATABASE_URL": database_url(),
                    "SECRET_KEY": "drill-live-test",
                    "ALLOWED_HOSTS": "127.0.0.1",
                    "GUNICORN_BIND": ports["investiq-api"],
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
                    f"--config.file={alertmanager_config(copy, app)}",
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
                    f"--config.file={prometheus_config(copy, ports)}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                    f"--web.listen-address={ports['prometheus']}",
                ],
                tmp_path / "prometheus.log",
            )
        )
        chain = Chain(app, settings.PROMETHEUS_URL, settings.ALERTMANAGER_URL)
        wait_for("the app", lambda: requests.get(f"{app}/readyz", timeout=3).status_code == 200, timeout=60)
        wait_for("Alertmanager", lambda: requests.get(f"{chain.alertmanager}/-/ready", timeout=3).ok)
        wait_for("Prometheus", lambda: requests.get(f"{chain.prometheus}/-/ready", timeout=3).ok)
        wait_for("the app scraped", lambda: app_scraped(chain))
        yield chain
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    finally:
        for process in reversed(processes):
            stop_process(process)


def app_scraped(chain: Chain) -> bool:
    query = {"query": 'investiq_killswitch_drill_halted{job="investiq-api"}'}
    body = requests.get(f"{chain.prometheus}/api/v1/query", params=query, timeout=3).json()
    return bool(body["data"]["result"])


def stages(record: dict) -> dict[str, dict]:
    return {stage["name"]: stage for stage in record["stages"]}


@pytest.mark.parametrize("chain", ["right token"], indirect=True)
def test_the_drill_passes_through_prometheus_and_alertmanager_with_measured_durations(chain):
    out = io.StringIO()
    call_command("drill", "--json", stdout=out)
    record = json.loads(out.getvalue())

    assert record["outcome"] == "passed", record
    by_name = stages(record)
    assert {name: stage["outcome"] for name, stage in by_name.items()} == dict.fromkeys(by_name, "passed")
    assert by_name["metric_shows_halt"]["observed"]["source"] == f"{chain.app}/metrics"
    arrived = by_name["alert_arrives"]["observed"]
    assert arrived["seconds_since_halt"] > 0
    assert by_name["alert_resolves"]["observed"]["seconds_since_resume"] > 0
    # The alert that arrived is the drill's, routed to the console receiver only.
    alert = Alert.objects.get(pk=arrived["alert_id"])
    assert (alert.alertname, alert.status) == ("KillSwitchDrillHalted", "resolved")
    assert alert.labels["console_only"] == "true"
    assert DrillRun.objects.get().halt_to_alert_seconds == arrived["seconds_since_halt"]
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE


@pytest.mark.parametrize("chain", ["wrong token"], indirect=True)
def test_with_a_wrong_webhook_token_the_drill_fails_at_the_alert_stage_saying_so(chain, settings):
    settings.DRILL_ALERT_TIMEOUT_SECONDS = 10

    with pytest.raises(CommandError, match="FAILED at alert_arrives: alert did not arrive within 10 s"):
        call_command("drill", stdout=io.StringIO())

    run = DrillRun.objects.get()
    assert run.failed_stage == "alert_arrives"
    assert "Alertmanager delivered nothing" in run.failure and "check the webhook token" in run.failure
    by_name = stages(run.as_json())
    assert by_name["resume"]["outcome"] == "passed"
    assert by_name["alert_resolves"]["outcome"] == "skipped"
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE


@pytest.mark.parametrize("chain", ["right token"], indirect=True)
def test_after_a_drill_died_halted_the_next_one_recovers_and_passes_with_an_alert_of_its_own(chain):
    # A drill killed after its halt: the scope HALTED, its alert delivered and firing,
    # its run left "running" long enough ago to count as dead.
    actor = Actor.system("drill-schedule", RUN_DRILL)
    drill_transition(State.HALTED, reason="kill-switch drill that died", actor=actor)
    wait_for(
        "the dead drill's alert", lambda: Alert.objects.filter(alertname=DRILL_ALERT).exists(), timeout=30
    )
    DrillRun.objects.create(
        started_by=actor.name,
        origin="beat",
        started_at=timezone.now() - timedelta(seconds=STALE_RUN_SECONDS + 1),
    )
    old = Alert.objects.get(alertname=DRILL_ALERT)

    out = io.StringIO()
    call_command("drill", "--json", stdout=out)
    record = json.loads(out.getvalue())

    assert record["outcome"] == "passed", record
    assert record["stages"][0]["name"] == "recover" and record["stages"][0]["outcome"] == "passed"
    old.refresh_from_db()
    assert old.status == "resolved"
    # This run's halt raised its own occurrence of the alert, not the dead run's.
    assert stages(record)["alert_arrives"]["observed"]["alert_id"] != old.pk
