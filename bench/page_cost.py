"""P6: the admin trade list and the console page with 1M trades vs 1k trades in Postgres.

Run from the README's venv, with the machine's Postgres:
    .venv/bin/python bench/page_cost.py [--rounds 100]
Two throwaway databases are loaded (1,000 and 1,000,000 trades, the same rows as
bench/scrape_cost.py), one gunicorn worker serves each, a staff user with an ops role
logs in to both, and requests alternate between the two servers page by page, so both
see the same machine noise. Target: median(1M) / median(1k) <= 2 for each page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import requests
from _servers import ROOT, execute, fresh_database, gunicorn
from scrape_cost import LOAD

from ops.tests.processes import log_in

PAGES = {"admin trade list": "/admin/ops/trade/", "console": "/"}
USERNAME, PASSWORD = "bench-ops", "bench-password-p6"
CREATE_USER = f"""
from django.contrib.auth.models import Group, User
user = User.objects.create_superuser({USERNAME!r}, password={PASSWORD!r})
user.groups.add(Group.objects.get(name="ops_viewer"))
"""
# Plain HTTP on the loopback: the session cookie must come back to the server.
SERVER_ENV = {"SESSION_COOKIE_SECURE": "false", "CSRF_COOKIE_SECURE": "false"}


def create_user(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v0", "-c", CREATE_USER],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench"},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"creating the bench user failed:\n{done.stderr}")


def timed_get(session: requests.Session, url: str) -> float:
    started = time.perf_counter()
    response = session.get(url, timeout=120)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    if "/admin/login/" in response.url:
        raise SystemExit(f"{url} sent us to the login page")
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    sizes = {"1k": 1_000, "1M": 1_000_000}
    with (
        fresh_database("investiq_bench_p6_1k") as small,
        fresh_database("investiq_bench_p6_1m") as large,
    ):
        databases = {"1k": small, "1M": large}
        for key, url in databases.items():
            started = time.perf_counter()
            execute(url, LOAD, (sizes[key],))
            # What autovacuum does in production; the admin's paginator reads the estimate.
            execute(url, "ANALYZE ops_trade")
            create_user(url)
            print(f"loaded {sizes[key]:>9,} trades in {time.perf_counter() - started:5.1f}s")
        with gunicorn(small, **SERVER_ENV) as small_url, gunicorn(large, **SERVER_ENV) as large_url:
            servers = {"1k": small_url, "1M": large_url}
            sessions = {
                key: log_in(url, USERNAME, PASSWORD, next_path="/admin/") for key, url in servers.items()
            }
            times = {(page, key): [] for page in PAGES for key in servers}
            for path in PAGES.values():  # warm connections, caches and templates
                for key, url in servers.items():
                    for _ in range(5):
                        timed_get(sessions[key], url + path)
            for _ in range(args.rounds):
                for page, path in PAGES.items():
                    for key, url in servers.items():
                        times[page, key].append(timed_get(sessions[key], url + path))
    for page, path in PAGES.items():
        med = {key: statistics.median(times[page, key]) for key in servers}
        for key in servers:
            p95 = statistics.quantiles(times[page, key], n=20)[18]
            print(
                f"{page:<16} {path:<18} {key:>2} trades: median {med[key]:7.2f} ms  p95 {p95:7.2f} ms"
                f"  ({args.rounds} requests)"
            )
        print(f"{page:<16} ratio median(1M) / median(1k) = {med['1M'] / med['1k']:.3f}   (target <= 2)")


if __name__ == "__main__":
    main()
