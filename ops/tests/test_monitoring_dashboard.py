"""The Grafana dashboard and provisioning, validated (Grafana cannot run on these machines).

test_monitoring_live.py then sends every panel query to a real Prometheus.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from ops.tests.monitoring_files import (
    DASHBOARD,
    ROOT,
    alert_rules,
    dashboard,
    load,
    panel_queries,
    run,
    substitute_grafana_variables,
    tool,
)

# The console embeds panels by id: these ids never change.
PANELS = {
    1: ("Request Rate", "timeseries"),
    2: ("Error Rate", "timeseries"),
    3: ("Latency p50/p95/p99", "timeseries"),
    4: ("Active Connections", "gauge"),
    5: ("Trades (24h)", "stat"),
    6: ("Analyses (24h)", "stat"),
    7: ("Database", "stat"),
    8: ("Redis", "stat"),
    9: ("Polygon API", "stat"),
    10: ("Alpaca", "stat"),
    11: ("ML Service", "stat"),
    12: ("Trading Status", "stat"),
}
HEALTH = {7: "database", 8: "redis", 9: "polygon", 10: "alpaca", 11: "ml_service"}


def datasource_uid() -> str:
    (datasource,) = load("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    return datasource["uid"]


def panels() -> dict[int, dict]:
    return {panel["id"]: panel for panel in dashboard()["panels"]}


def value_mappings(panel: dict) -> dict[str, tuple[str, str]]:
    out = {}
    for mapping in panel["fieldConfig"]["defaults"]["mappings"]:
        if mapping["type"] == "value":
            out.update({value: (m["text"], m["color"]) for value, m in mapping["options"].items()})
        elif mapping["type"] == "special":
            out[mapping["options"]["match"]] = (
                mapping["options"]["result"]["text"],
                mapping["options"]["result"]["color"],
            )
    return out


def test_the_dashboard_has_the_fixed_uid_and_is_provisionable():
    board = dashboard()
    assert board["uid"] == "investiq-overview"
    assert board["id"] is None  # Grafana assigns its own; the uid is the identity
    assert isinstance(board["schemaVersion"], int)
    # Only the UI import dialog resolves these; provisioning would leave them broken.
    assert "__inputs" not in board and "${DS_" not in DASHBOARD.read_text()


def test_the_twelve_panels_keep_their_ids_titles_and_types():
    assert {pid: (p["title"], p["type"]) for pid, p in panels().items()} == PANELS
    assert len(dashboard()["panels"]) == len(PANELS)


def test_panels_fit_the_grid_without_overlapping():
    cells = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_every_panel_and_query_uses_the_provisioned_datasource():
    uid = datasource_uid()
    assert uid == "investiq-prometheus"
    for panel in dashboard()["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            assert target["expr"].strip(), panel["title"]


@pytest.mark.parametrize(("pid", "name"), HEALTH.items())
def test_health_stats_show_up_down_and_unknown_never_green_without_data(pid, name):
    panel = panels()[pid]
    (target,) = panel["targets"]
    assert f'name="{name}"' in target["expr"] and "investiq_dependency_health" in target["expr"]
    defaults = panel["fieldConfig"]["defaults"]
    mappings = value_mappings(panel)
    assert mappings["1"] == ("UP", "green")
    assert mappings["0"] == ("DOWN", "red")
    assert mappings["null+nan"] == ("UNKNOWN", "grey")
    assert defaults["noValue"] == "UNKNOWN"
    # No data takes the base threshold colour: grey, not green.
    assert defaults["thresholds"]["steps"][0] == {"color": "grey", "value": None}


def test_trading_status_maps_the_three_states():
    panel = panels()[12]
    assert (
        "investiq_trading_state" in panel["targets"][0]["expr"]
        and 'scope="global"' in panel["targets"][0]["expr"]
    )
    mappings = value_mappings(panel)
    assert {v: mappings[v][0] for v in ("0", "1", "2")} == {"0": "ACTIVE", "1": "REDUCING", "2": "HALTED"}
    assert mappings["2"][1] == "red" and mappings["0"][1] == "green"
    assert panel["fieldConfig"]["defaults"]["noValue"] == "UNKNOWN"


def test_business_stats_count_the_last_24_hours_once_per_deployment():
    for pid, metric in ((5, "investiq_trades_total"), (6, "investiq_analyses_total")):
        (target,) = panels()[pid]["targets"]
        # max by (...) first: every web instance exports the same database totals.
        assert re.search(rf"max by \(\w+\) \(increase\({metric}\{{[^}}]*\}}\[24h\]\)\)", target["expr"])


def test_latency_panel_shows_p50_p95_p99():
    targets = panels()[3]["targets"]
    quantiles = {t["refId"]: re.match(r"histogram_quantile\((0\.\d+),", t["expr"]).group(1) for t in targets}
    assert quantiles == {"A": "0.50", "B": "0.95", "C": "0.99"}
    assert panels()[3]["fieldConfig"]["defaults"]["unit"] == "ms"


def test_every_panel_query_is_valid_promql(tmp_path):
    # promtool parses each expression as a recording rule (Grafana variables substituted).
    rules = [
        {"record": f"panel:query:{index}", "expr": substitute_grafana_variables(expr, 10)}
        for index, (_, _, expr) in enumerate(panel_queries())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = run(tool("promtool"), "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    # ... and a broken one is refused, so the check above means something.
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "p", "rules": [{"record": "a:b:c", "expr": "sum(("}]}]})
    )
    assert run(tool("promtool"), "check", "rules", path).returncode == 1


def test_provisioning_matches_the_compose_mounts_and_the_scrape_interval():
    provider = load("grafana/provisioning/dashboards/dashboard.yml")["providers"][0]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./monitoring/grafana/dashboards"
    assert provider["allowUiUpdates"] is False  # the file is the source of truth
    (datasource,) = load("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    api_job = next(j for j in load("prometheus.yml")["scrape_configs"] if j["job_name"] == "investiq-api")
    assert datasource["jsonData"]["timeInterval"] == api_job["scrape_interval"]


def test_the_dashboard_file_is_formatted_for_stable_diffs():
    # Stable diffs: 2-space JSON, as written by `json.dumps(..., indent=2)` plus a newline.
    text = DASHBOARD.read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"


def test_the_dashboards_red_lines_are_the_alert_thresholds():
    """The two panels that draw a threshold repeat it from alert_rules.yml (the dashboard
    reads the raw series, not the recording rules): a changed rule must move the line."""
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    red = {
        panel["title"]: panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]
        for panel in dashboard()["panels"]
        if panel["id"] in (2, 3)
    }
    assert all(step["color"] == "red" for step in red.values())
    error_rate = float(re.search(r"> ([\d.]+)$", rules["HighErrorRate"]).group(1))
    latency = float(re.search(r"> ([\d.]+)$", rules["HighLatency"]).group(1))
    assert sorted(step["value"] for step in red.values()) == sorted([error_rate, latency])
    assert red["Error Rate"]["value"] == error_rate
