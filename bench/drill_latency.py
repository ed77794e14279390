"""The kill-switch drill through the real chain: halt → alert at the webhook, resume → resolved.

A fresh Postgres database, gunicorn, a real Prometheus with the project's prometheus.yml
and rules (targets on loopback) and a real Alertmanager with the project's
alertmanager.yml delivering to the app's own webhook; then `manage.py drill --json`
ROUNDS times, reporting each stage's measured figures. Run with the stock intervals
(10 s scrape and evaluation) and with 1 s (the live tests'):

    .venv/bin/python bench/drill_latency.py --interval 10 --rounds 5
    .venv/bin/python bench/drill_latency.py --interval 1 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml
from _servers import ROOT, add_api_token, execute, fresh_database, gunicorn

from ops.tests.monitoring_files import MONITORING
from ops.tests.processes import free_port, stop_process

METRICS_TOKEN = "bench-metrics-token"  # noqa: S105 - a throwaway local server's
WEBHOOK_TOKEN = "bench-webhook-token"  # noqa: S105


def configs(tmp: Path, app: str, ports: dict[str, str], interval: int) -> tuple[Path, Path]:
    (tmp / "metrics_token").write_text(METRICS_TOKEN)
    (tmp / "webhook_token").write_text(WEBHOOK_TOKEN)
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    prometheus["global"].update(scrape_interval=f"{interval}s", evaluation_interval=f"{interval}s")
    prometheus["global"]["scrape_timeout"] = f"{min(interval, 5)}s"
    for job in prometheus["scrape_configs"]:
        job.update(scrape_interval=f"{interval}s", scrape_timeout=f"{min(interval, 5)}s")
        job["static_configs"] = [{"targets": [ports[job["job_name"]]]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(tmp / "metrics_token")
    prometheus["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [ports["alertmanager"]]}]}]
    prometheus["rule_files"] = [str(MONITORING / name) for name in prometheus["rule_files"]]
    alertmanager = yaml.safe_load(
        (MONITORING / "alertmanager.yml").read_text().replace("http://web:8000", app)
    )
    for receiver in alertmanager["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["http_config"]["authorization"]["credentials_file"] = str(tmp / "webhook_token")
    paths = tmp / "prometheus.yml", tmp / "alertmanager.yml"
    paths[0].write_text(yaml.safe_dump(prometheus))
    paths[1].write_text(yaml.safe_dump(alertmanager))
    return paths


def started(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as output:
        return subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def wait(what: str, check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    sys.exit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=int, default=10, help="scrape and evaluation interval, s")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with fresh_database("investiq_bench_drill") as database, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # The webhook's token: an API client with the alerts scope.
        add_api_token(database, WEBHOOK_TOKEN)
        execute(database, "UPDATE ops_apiclient SET scopes = 'alerts' WHERE name = 'bench'")
        with gunicorn(database, workers=2, METRICS_TOKEN=METRICS_TOKEN) as app:
            ports = {
                name: f"127.0.0.1:{free_port()}" for name in ("prometheus", "alertmanager", "ml-service")
            }
            ports["investiq-api"] = app.removeprefix("http://")
            prometheus_yml, alertmanager_yml = configs(tmp, app, ports, args.interval)
            processes = [
                started(
                    [
                        "prometheus-alertmanager",
                        f"--config.file={alertmanager_yml}",
                        f"--storage.path={tmp / 'am'}",
                        f"--web.listen-address={ports['alertmanager']}",
                        "--cluster.listen-address=",
                    ],
                    tmp / "alertmanager.log",
                ),
                started(
                    [
                        "prometheus",
                        f"--config.file={prometheus_yml}",
                        f"--storage.tsdb.path={tmp / 'prom'}",
                        f"--web.listen-address={ports['prometheus']}",
                    ],
                    tmp / "prometheus.log",
                ),
            ]
            try:
                query = f"http://{ports['prometheus']}/api/v1/query"
                wait(
                    "Prometheus to scrape the app",
                    lambda: requests.get(
                        query, params={"query": "investiq_killswitch_drill_halted"}, timeout=3
                    ).json()["data"]["result"],
                )
                env = {
                    **os.environ,
                    "DATABASE_URL": database,
                    "SECRET_KEY": "bench",
                    "LOG_LEVEL": "WARNING",
                    "DRILL_ALERTS": "true",
                    "APP_URL": app,
                    "METRICS_TOKEN": METRICS_TOKEN,
                    "PROMETHEUS_URL": f"http://{ports['prometheus']}",
                    "ALERTMANAGER_URL": f"http://{ports['alertmanager']}",
                    "DRILL_ALERT_TIMEOUT_SECONDS": str(max(60, 6 * args.interval)),
                }
                figures: dict[str, list[float]] = {}
                for round_ in range(args.rounds):
                    result = subprocess.run(
                        [sys.executable, "manage.py", "drill", "--json"],
                        cwd=ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    record = json.loads(result.stdout) if result.stdout.strip() else {}
                    stages = {stage["name"]: stage for stage in record.get("stages", [])}
                    if record.get("outcome") != "passed":
                        sys.exit(f"round {round_}: drill failed: {record.get('failure') or result.stderr}")
                    row = {
                        "halt → alert s": stages["alert_arrives"]["observed"]["seconds_since_halt"],
                        "resume → resolved s": stages["alert_resolves"]["observed"]["seconds_since_resume"],
                        "whole drill s": sum(stage["duration_s"] for stage in stages.values()),
                        "halt s": stages["halt"]["duration_s"],
                        "gate s": stages["gate_refuses"]["duration_s"],
                        "metric s": stages["metric_shows_halt"]["duration_s"],
                    }
                    print(f"round {round_}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
                    for key, value in row.items():
                        figures.setdefault(key, []).append(value)
                print(f"interval {args.interval} s, {args.rounds} rounds:")
                for key, values in figures.items():
                    print(f"  {key:22} median {statistics.median(values):7.3f}  max {max(values):7.3f}")
            finally:
                for process in processes:
                    stop_process(process)


if __name__ == "__main__":
    main()
