"""check_monitoring's static checks on copies of monitoring/ (the live checks run in
test_alert_loop.py against a real Prometheus, Alertmanager, worker and beat)."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ops.monitoring.chain.files import metric_names
from ops.tests.monitoring_files import MONITORING, tool


@pytest.fixture
def copy(tmp_path, settings) -> Path:
    target = tmp_path / "monitoring"
    shutil.copytree(MONITORING, target)
    settings.MONITORING_DIR = target
    return target


def static(*args: str) -> tuple[str, bool]:
    out = StringIO()
    try:
        call_command("check_monitoring", "--static-only", *args, stdout=out)
    except CommandError:
        return out.getvalue(), False
    return out.getvalue(), True


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_project_files_pass(copy):
    tool("promtool")
    tool("amtool")
    report, ok = static()
    assert ok, report
    assert "PASS  alert, rule and panel metrics are exported" in report
    assert "PASS  promtool test rules" in report and "PASS  amtool check-config" in report


def test_a_yaml_error_names_the_file_and_line(copy):
    edit(copy / "alertmanager.yml", "route:\n", "route:\n  - [unclosed\n")
    report, ok = static()
    assert not ok
    assert "FAIL  parse monitoring/alertmanager.yml" in report
    assert "alertmanager.yml:" in report and "Traceback" not in report


def test_a_broken_dashboard_json_names_the_line(copy):
    dashboard = copy / "grafana/dashboards/investiq-overview.json"
    dashboard.write_text(dashboard.read_text().replace('"panels"', '"panels" "', 1))
    report, ok = static()
    assert not ok and "investiq-overview.json:" in report


def test_a_panel_reading_a_metric_the_app_does_not_export_fails(copy):
    edit(
        copy / "grafana/dashboards/investiq-overview.json",
        "sum(investiq_active_connections{",
        "sum(investiq_active_conections{",
    )
    report, ok = static()
    assert not ok
    assert "investiq_active_conections (panel 4 'Active Connections')" in report


def test_a_panel_whose_promql_does_not_parse_fails_and_names_the_panel(copy):
    edit(
        copy / "grafana/dashboards/investiq-overview.json",
        "sum(investiq_active_connections{",
        "sum(investiq_active_connections{{",
    )
    report, ok = static()
    assert not ok
    assert "PromQL does not parse: " in report and "(panel 4 'Active Connections')" in report


def test_an_alert_reading_an_undefined_recording_rule_fails(copy):
    edit(copy / "alert_rules.yml", "job:investiq_errors:rate5m", "job:investiq_errors:rate1m")
    report, ok = static()
    assert not ok and "job:investiq_errors:rate1m: no recording rule defines it" in report


def test_a_dashboard_on_another_datasource_fails(copy):
    edit(copy / "grafana/dashboards/investiq-overview.json", '"investiq-prometheus"', '"some-other-uid"')
    report, ok = static()
    assert not ok and "FAIL  dashboard uses the provisioned datasource" in report


def test_missing_tools_are_a_warning_not_a_failure(copy, monkeypatch):
    monkeypatch.setattr("ops.monitoring.chain.static.shutil.which", lambda name: None)
    report, ok = static()
    assert ok, report
    assert "WARN  promtool check config" in report and "not on PATH" in report


def test_json_output_is_machine_readable(copy):
    out, _ = static("--json")
    results = json.loads(out)
    assert {"check", "status", "detail"} == set(results[0])
    assert {result["status"] for result in results} <= {"PASS", "WARN", "FAIL", "SKIP"}


def test_the_runtime_checks_name_what_is_down(copy, db):
    out = StringIO()
    with pytest.raises(CommandError, match="Prometheus ready"):
        call_command(
            "check_monitoring",
            "--prometheus-url=http://127.0.0.1:1",
            "--alertmanager-url=http://127.0.0.1:1",
            "--app-url=http://127.0.0.1:1",
            stdout=out,
        )
    report = out.getvalue()
    assert "FAIL  Prometheus ready" in report and "Connection refused" in report
    assert "FAIL  Alertmanager ready" in report and "SKIP  Grafana healthy" in report
    assert "no dependency has ever been checked" in report


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (job) (rate(investiq_requests_total[5m]))", {"investiq_requests_total"}),
        (
            "histogram_quantile(0.95, sum by (job, le) "
            '(rate(investiq_request_duration_milliseconds_bucket{job="x"}[5m])))',
            {"investiq_request_duration_milliseconds_bucket"},
        ),
        ("job:investiq_errors:rate5m > 0.1", {"job:investiq_errors:rate5m"}),
        ('up{job!="ml-service"} == 0 and on (job) absent(foo_bar)', {"up", "foo_bar"}),
        (
            "time() - max by (job, name) (investiq_dependency_last_check_timestamp_seconds) > 45",
            {"investiq_dependency_last_check_timestamp_seconds"},
        ),
        ("rate(x_total[$__rate_interval]) * 1e3", {"x_total"}),
        # A name matched by label, not written before the braces; a regex match names none.
        ('{__name__="investiq_up", job="x"} or {__name__=~"investiq_.*"}', {"investiq_up"}),
        # Words that read like metrics but are a label value and a function's argument name.
        ('label_replace(up, "dst", "investiq_x", "src", "(.*)")', {"up"}),
    ],
)
def test_metric_names_are_read_from_promql(expr, names):
    assert metric_names(expr) == names


def test_a_grafana_url_that_is_a_path_behind_the_proxy_is_skipped_with_how_to_check_it():
    from ops.monitoring.chain import SKIP
    from ops.monitoring.chain.runtime import Urls, grafana

    (result,) = grafana(Urls(prometheus="", alertmanager="", grafana="/grafana", app=""))
    assert result.status == SKIP
    assert "--grafana-url" in result.detail and "/grafana" in result.detail


# --- Runtime checks that need no live stack ------------------------------------------------


def heartbeat_results() -> list:
    from ops.monitoring.chain.runtime import Urls, heartbeat

    return list(heartbeat(Urls("", "", "", "")))


def test_the_heartbeat_check_warns_when_never_received_and_fails_when_silent(db, settings):
    from datetime import timedelta

    from django.utils import timezone

    from ops.alerts.models import Heartbeat

    ((_, status, detail),) = [(r.check, r.status, r.detail) for r in heartbeat_results()]
    assert status == "WARN" and "no Watchdog heartbeat has ever been received" in detail
    row = Heartbeat.objects.create()
    assert heartbeat_results()[0].status == "PASS"
    settings.MONITORING_HEARTBEAT_MAX_AGE_SECONDS = 60
    row.last_received_at = timezone.now() - timedelta(seconds=120)
    row.save()
    (result,) = heartbeat_results()
    assert result.status == "FAIL" and result.check == "Watchdog heartbeat reaches the console"
    assert "MONITORING SILENT" in result.detail and "Watchdog heartbeat" in result.detail


def prometheus_answering(httpserver, answers: dict[str, list], jobs: list[str]) -> str:
    """A local server answering Prometheus's query API with fixed results per expression
    (the real Prometheus case, two samples or not, runs in test_alert_loop.py)."""
    from werkzeug import Response

    def query(request):
        result = answers.get(request.args["query"], [])
        return Response(json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}))

    httpserver.expect_request("/api/v1/query").respond_with_handler(query)
    targets = [{"labels": {"job": job}, "health": "unknown"} for job in jobs]
    httpserver.expect_request("/api/v1/targets").respond_with_json(
        {"status": "success", "data": {"activeTargets": targets}}
    )
    return httpserver.url_for("/").rstrip("/")


@pytest.mark.parametrize(
    ("answers", "jobs", "status", "words"),
    [
        # Scraped once: increase() has one sample, so no answer yet. Not a FAIL.
        ({"samples": [{"value": [0, "1"]}], "up": [{"value": [0, "1"]}]}, ["alertmanager"], "WARN", "sample"),
        # Configured, not scraped yet (Prometheus just started).
        ({}, ["alertmanager"], "WARN", "not scraped yet"),
        # Not in prometheus.yml at all.
        ({}, ["investiq-api"], "FAIL", "does not scrape Alertmanager"),
        ({"up": [{"value": [0, "0"]}]}, ["alertmanager"], "FAIL", "target is down"),
        ({"failures": [{"value": [0, "3"]}]}, ["alertmanager"], "FAIL", "3 failed webhook deliveries"),
        ({"failures": [{"value": [0, "0"]}]}, ["alertmanager"], "PASS", "no failed deliveries"),
    ],
)
def test_the_webhook_check_tells_not_scraped_from_not_enough_samples(
    httpserver, answers, jobs, status, words
):
    from ops.monitoring.chain.runtime import (
        ALERTMANAGER_UP,
        WEBHOOK_FAILURES,
        WEBHOOK_SAMPLES,
        _webhook_deliveries,
    )

    names = {"failures": WEBHOOK_FAILURES, "samples": WEBHOOK_SAMPLES, "up": ALERTMANAGER_UP}
    base = prometheus_answering(httpserver, {names[k]: v for k, v in answers.items()}, jobs)
    (result,) = list(_webhook_deliveries(base))
    assert (result.status, words in result.detail) == (status, True), result
