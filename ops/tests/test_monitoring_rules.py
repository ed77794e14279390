"""monitoring/ checked by the real tools: promtool and amtool (Debian packages).

Plus the rules' own contract (names, severities, annotations, runbooks, test coverage),
read from the YAML files themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from ops.tests.monitoring_files import (
    MONITORING,
    RULE_FILES,
    alert_rules,
    load,
    recording_rules,
    rule_groups,
    run,
    runnable_copy,
    tool,
)

UNIT_TESTS = sorted((MONITORING / "tests").glob("*.yml"))
SEED_ALERTS = {
    "HighErrorRate": "warning",
    "HighLatency": "warning",
    "ServiceDown": "critical",
    "CircuitBreakerTripped": "critical",
    "MLServiceDown": "warning",
}


# --- promtool --------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config_and_its_rule_files(tmp_path):
    copy = runnable_copy(tmp_path)
    result = run(tool("promtool"), "check", "config", copy / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # check config loads every rule_files entry: both files were read and counted.
    assert "SUCCESS: 2 rule files found" in result.stdout
    for name in RULE_FILES:
        assert f"Checking {copy / name}" in result.stdout


def test_promtool_accepts_the_rule_files_without_lint_findings():
    result = run(
        tool("promtool"), "check", "rules", "--lint=all", "--lint-fatal", *RULE_FILES, cwd=MONITORING
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_promtool_unit_test_passes():
    assert UNIT_TESTS
    result = run(tool("promtool"), "test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def broken_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    copy = runnable_copy(tmp_path)
    text = (copy / name).read_text()
    assert old in text
    (copy / name).write_text(text.replace(old, new, 1))
    return copy


def test_a_rule_file_with_a_syntax_error_fails_every_check(tmp_path):
    copy = broken_copy(tmp_path, "alert_rules.yml", "max by (job) (investiq_trading_halted)", "max by (job (")
    promtool = tool("promtool")
    checked = run(promtool, "check", "rules", "alert_rules.yml", cwd=copy)
    assert checked.returncode == 1
    assert "alert_rules.yml" in checked.stderr
    assert run(promtool, "check", "config", copy / "prometheus.yml").returncode == 1
    assert run(promtool, "test", "rules", *sorted((copy / "tests").glob("*.yml"))).returncode == 1


def test_a_changed_threshold_fails_the_unit_tests(tmp_path):
    # Valid PromQL, wrong behaviour: only the unit tests can notice.
    copy = broken_copy(
        tmp_path, "alert_rules.yml", "job:investiq_errors:rate5m > 0.1", "job:investiq_errors:rate5m > 1"
    )
    assert run(tool("promtool"), "check", "rules", "alert_rules.yml", cwd=copy).returncode == 0
    result = run(tool("promtool"), "test", "rules", copy / "tests" / "service_alerts_test.yml")
    assert result.returncode == 1
    assert "HighErrorRate" in result.stdout + result.stderr


# --- amtool ------------------------------------------------------------------------------


def test_amtool_accepts_the_alertmanager_config(tmp_path):
    copy = runnable_copy(tmp_path)
    result = run(tool("amtool"), "check-config", copy / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_rejects_a_broken_alertmanager_config(tmp_path):
    copy = broken_copy(tmp_path, "alertmanager.yml", "receiver: pager", "receiver: nobody")
    result = run(tool("amtool"), "check-config", copy / "alertmanager.yml")
    assert result.returncode == 1
    assert "nobody" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # The console receives everything; people are paged for critical alerts and told
        # in chat about warnings.
        (["severity=critical", "alertname=CircuitBreakerTripped"], "console,pager"),
        (["severity=warning", "alertname=HighLatency"], "console,chat"),
        (["severity=info", "alertname=SomethingNew"], "console"),
        (["severity=none", "alertname=SomethingNew"], "console"),
        (["alertname=SomethingNew"], "console"),  # no severity: still delivered
        # Drills and the chain's own checks never reach a person, whatever their severity.
        (["severity=critical", "console_only=true", "alertname=KillSwitchDrillHalted"], "console"),
        (["severity=warning", "console_only=true", "alertname=MonitoringSelfCheck"], "console"),
        (["severity=none", "alertname=Watchdog"], "console-heartbeat"),
    ],
)
def test_alerts_are_routed_by_severity(labels, receivers):
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={MONITORING / 'alertmanager.yml'}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_a_wrong_routing_expectation_fails():
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={MONITORING / 'alertmanager.yml'}",
        "--verify.receivers=console",
        "severity=critical",  # console,pager
    )
    assert result.returncode == 1


# --- The contract of the files themselves (no tool needed) -------------------------------


def test_prometheus_scrapes_the_contract_jobs_at_their_intervals():
    config = load("prometheus.yml")
    assert config["global"]["evaluation_interval"] == "10s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # No ml-service job: compose runs no ML service, so its target would be down forever
    # (MLServiceDown reads the app's /health probe instead). The job is opt-in, commented.
    assert set(jobs) == {"investiq-api", "prometheus", "alertmanager"}
    assert jobs["investiq-api"]["scrape_interval"] == "10s"
    assert '#     - targets: ["ml-service:8004"]' in (MONITORING / "prometheus.yml").read_text()
    auth = jobs["investiq-api"]["authorization"]
    assert set(auth) == {"type", "credentials_file"}  # never an inline token
    assert config["rule_files"] == list(RULE_FILES)
    assert config["alerting"]["alertmanagers"]


def test_the_seed_alerts_keep_their_names_and_severities():
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in alert_rules()}
    assert {name: severities.get(name) for name in SEED_ALERTS} == SEED_ALERTS
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert "for" not in rules["CircuitBreakerTripped"]  # pages at the first evaluation
    assert rules["HighErrorRate"]["for"] == "2m"
    assert rules["HighLatency"]["for"] == "5m"
    assert rules["ServiceDown"]["for"] == "1m"
    assert rules["MLServiceDown"]["for"] == "5m"
    assert 'investiq_dependency_health{name="ml_service"}' in rules["MLServiceDown"]["expr"]


def test_the_watchdog_always_fires_and_pages_nobody():
    (watchdog,) = [rule for rule in alert_rules() if rule["alert"] == "Watchdog"]
    assert watchdog["expr"] == "vector(1)" and "for" not in watchdog
    assert watchdog["labels"] == {"severity": "none"}
    # The dedicated route comes first, stops there, and repeats faster than the app's
    # default MONITORING_HEARTBEAT_MAX_AGE_SECONDS (300 s) by far.
    first = load("alertmanager.yml")["route"]["routes"][0]
    assert first["matchers"] == ['alertname="Watchdog"'] and first["continue"] is False
    assert first["receiver"] == "console-heartbeat"
    assert seconds(first["group_interval"]) <= seconds(first["repeat_interval"]) <= 60


def readme_anchors() -> set[str]:
    anchors = set()
    for line in (MONITORING / "README.md").read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_severity_annotations_and_a_runbook_section(rule):
    # "none" is the Watchdog's alone: it is a heartbeat, not something to act on.
    allowed = {"none"} if rule["alert"] == "Watchdog" else {"critical", "warning"}
    assert rule["labels"]["severity"] in allowed
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert path == "monitoring/README.md"
    assert anchor == rule["alert"].lower()
    assert anchor in readme_anchors()


def unit_test_evaluations() -> dict[str, dict[tuple[str, str], dict[str, set[int]]]]:
    """alertname -> (file, test name) -> {"firing": eval seconds, "quiet": eval seconds}."""
    found: dict = defaultdict(lambda: defaultdict(lambda: {"firing": set(), "quiet": set()}))
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test.get("alert_rule_test", []):
                kind = "firing" if check.get("exp_alerts") else "quiet"
                found[check["alertname"]][(path.name, test["name"])][kind].add(seconds(check["eval_time"]))
    return found


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_firing_a_quiet_and_a_boundary_unit_test(rule):
    cases = unit_test_evaluations()[rule["alert"]]
    assert any(case["firing"] for case in cases.values()), "no firing case"
    if rule["alert"] == "Watchdog":
        return  # always firing by design: it has no quiet case and no boundary
    assert any(case["quiet"] and not case["firing"] for case in cases.values()), "no not-firing case"
    # The boundary: in a test where it fires, the evaluation one interval (1m) earlier
    # is still quiet (pending for an alert with `for`, false for one without).
    assert any(
        (first - 60) in case["quiet"]
        for case in cases.values()
        if case["firing"]
        for first in [min(case["firing"])]
    ), "no boundary case one evaluation before it fires"


def test_unit_tests_run_every_rule_group_in_a_fixed_order():
    groups = rule_groups()
    for path in UNIT_TESTS:
        order = yaml.safe_load(path.read_text()).get("group_eval_order")
        if order is not None:
            # promtool ignores a partial order; recording groups must come first.
            assert sorted(order) == sorted(groups), path.name
            assert order[:2] == [g["name"] for g in load("recording_rules.yml")["groups"]], path.name


def test_recording_rules_follow_the_naming_convention():
    for rule in recording_rules():
        assert re.fullmatch(r"job:investiq_\w+:\w+", rule["record"]), rule["record"]
        assert "by (job" in rule["expr"]


# --- validate.sh ---------------------------------------------------------------------------


def validate(tmp_path: Path, break_it: tuple[str, str, str] | None = None) -> subprocess.CompletedProcess:
    """validate.sh --static-only on a copy of monitoring/ (MONITORING_DIR), optionally broken."""
    tool("promtool")
    tool("amtool")
    copy = tmp_path / "monitoring"
    shutil.copytree(MONITORING, copy)
    if break_it:
        name, old, new = break_it
        text = (copy / name).read_text()
        assert old in text
        (copy / name).write_text(text.replace(old, new, 1))
    env = {**os.environ, "MONITORING_DIR": str(copy), "PYTHON": sys.executable}
    return subprocess.run(
        ["sh", str(MONITORING / "validate.sh"), "--static-only"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_validate_sh_passes_on_the_project_files(tmp_path):
    result = validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^FAIL", result.stdout, re.MULTILINE) and ", 0 FAIL," in result.stdout


def test_validate_sh_fails_on_a_broken_alert_rule(tmp_path):
    result = validate(tmp_path, ("alert_rules.yml", "for: 2m", "for: 2 minutes"))
    assert result.returncode == 1
    assert "FAIL  promtool check rules" in result.stdout
