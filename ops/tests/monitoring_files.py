"""Helpers for the tests of monitoring/: the files, their tools, and runnable copies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"


def load(name: str) -> Any:
    return yaml.safe_load((MONITORING / name).read_text())


# From prometheus.yml itself, so the tests check exactly the rule files Prometheus loads.
RULE_FILES = tuple(load("prometheus.yml")["rule_files"])


def alert_rules() -> list[dict]:
    return [rule for group in load("alert_rules.yml")["groups"] for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict]:
    return [rule for group in load("recording_rules.yml")["groups"] for rule in group["rules"]]


def rule_groups() -> list[str]:
    return [group["name"] for name in RULE_FILES for group in load(name)["groups"]]


def tool(name: str) -> str:
    """The path of a Prometheus tool; skips (fails in CI) when it is not installed."""
    path = shutil.which(name)
    require_service(
        path is not None,
        f"{name} is not installed (Debian packages prometheus, prometheus-alertmanager)",
    )
    return path


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def runnable_copy(tmp_path: Path, tokens: dict[str, str] | None = None) -> Path:
    """The project's monitoring/ as check_monitoring copies it (secrets as local files)."""
    from ops.monitoring.chain.static import runnable_copy as copy_for_tools

    return copy_for_tools(tmp_path, tokens, source=MONITORING)


DASHBOARD = MONITORING / "grafana" / "dashboards" / "investiq-overview.json"


def dashboard() -> dict:
    import json

    return json.loads(DASHBOARD.read_text())


def panel_queries() -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) for every query of the dashboard."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    ]


def substitute_grafana_variables(expr: str, scrape_interval_seconds: int) -> str:
    """What Grafana sends to Prometheus: its built-in variables replaced.

    $__rate_interval is max($__interval + scrape interval, 4 x scrape interval); with the
    dashboard's steps at or below the scrape interval that is 4 x the scrape interval.
    """
    rate = f"{4 * scrape_interval_seconds}s"
    return (
        expr.replace("$__rate_interval", rate)
        .replace("${__rate_interval}", rate)
        .replace("$__interval", f"{scrape_interval_seconds}s")
        .replace("$__range", "1h")
    )
