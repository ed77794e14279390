"""What the console's silences part adds to each page and live refresh (every 5 s).

Run from the README's venv, with Debian's prometheus-alertmanager installed:
    .venv/bin/python bench/silences_cost.py [--calls 200] [--silences 20]

A real Alertmanager (a minimal config, loopback, a throwaway data folder) holds
`--silences` active silences; the script times ops.alerts.silences.active(), the read the
console makes, with Alertmanager answering, refusing connections (nothing listening) and
never answering (a server that accepts and holds), and not configured. No database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from _servers import ROOT  # noqa: F401 - puts the project on sys.path

from ops.tests.dependency_servers import SilentServer
from ops.tests.processes import free_port, stop_process, wait_until_ready

CONFIG = "route: {receiver: none}\nreceivers: [{name: none}]\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--silences", type=int, default=20)
    args = parser.parse_args()
    os.environ.update({"DJANGO_SETTINGS_MODULE": "investiq.settings", "SECRET_KEY": "bench"})
    import django

    django.setup()
    from django.test import override_settings

    from ops.alerts import silences

    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "alertmanager.yml"
        config.write_text(CONFIG)
        address = f"127.0.0.1:{free_port()}"
        process = subprocess.Popen(
            [
                "prometheus-alertmanager",
                f"--config.file={config}",
                f"--storage.path={folder}/data",
                f"--web.listen-address={address}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            url = f"http://{address}"
            wait_until_ready(f"{url}/-/ready", process)
            now = datetime.now(UTC)
            for index in range(args.silences):
                requests.post(
                    f"{url}/api/v2/silences",
                    json={
                        "matchers": [
                            {"name": "alertname", "value": f"A{index}", "isRegex": False, "isEqual": True}
                        ],
                        "startsAt": now.isoformat(),
                        "endsAt": (now + timedelta(hours=1)).isoformat(),
                        "createdBy": "bench",
                        "comment": "bench",
                    },
                    timeout=5,
                ).raise_for_status()
            with SilentServer() as silent:
                cases = {
                    f"answering ({args.silences} silences)": (url, args.calls),
                    "refusing (nothing listens)": (f"http://127.0.0.1:{free_port()}", args.calls),
                    "never answering": (silent.url(), 3),
                    "not configured": ("", args.calls),
                }
                print(f"silences.active(), {args.calls} calls (3 when never answering): ms per call")
                print(f"{'Alertmanager':<30} {'median':>8} {'p95':>8} {'max':>8}")
                for name, (target, calls) in cases.items():
                    with override_settings(ALERTMANAGER_URL=target):
                        silences.active()  # warm: the connection pool, imports
                        times = []
                        for _ in range(calls):
                            start = time.perf_counter()
                            silences.active()
                            times.append((time.perf_counter() - start) * 1000)
                    times.sort()
                    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                    print(f"{name:<30} {statistics.median(times):>8.2f} {p95:>8.2f} {times[-1]:>8.2f}")
        finally:
            stop_process(process)


if __name__ == "__main__":
    main()
