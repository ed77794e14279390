"""Alert storm: 1,000 distinct alerts as 20 webhook posts of 50, then the same 20 again.

Run from the README's venv, with the machine's Postgres:
    .venv/bin/python bench/alert_storm.py [--rounds 5]
Two throwaway databases hold 1,000 and 100,000 stored alerts. In each round a fresh
storm (new fingerprints) is posted through the whole webhook view (token check, parsing,
intake), in process with Django's test client, and then redelivered unchanged, as
Alertmanager does at every repeat_interval; the round's alerts are deleted afterwards so
the tables keep their size. Rounds alternate between the two databases (one subprocess
each per round), so both see the same machine noise.

Reported per database: ms per post (median over the rounds' posts), rows stored, SQL
statements per post and write statements per redelivered post. Targets: the redelivery
writes nothing; median ms per alert at 100k / at 1k <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _servers import ROOT, fresh_database

POSTS, PER_POST = 20, 50
TOKEN = "bench-alert-storm-token"  # noqa: S105 (a throwaway database's)
WRITES = ("INSERT", "UPDATE", "DELETE")


def alert(fingerprint: int, name: str) -> dict:
    """One alert as Alertmanager 0.25 posts it (about 800 bytes, like the project's)."""
    return {
        "status": "firing",
        "labels": {"alertname": name, "severity": "warning", "job": "investiq-api", "instance": "web:8000"},
        "annotations": {
            "summary": f"{name} on web:8000",
            "description": f"{name} has been firing for 5 minutes on web:8000 (job investiq-api).",
            "runbook_url": f"monitoring/README.md#{name.lower()}",
        },
        "startsAt": "2026-12-03T06:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": f"{fingerprint:016x}",
    }


def notification(alerts: list[dict]) -> dict:
    return {"version": "4", "status": "firing", "receiver": "console", "alerts": alerts}


def worker(stored: int, round_index: int) -> dict:
    """One round against DATABASE_URL: ensure `stored` older alerts, storm, redeliver."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "investiq.settings")
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from ops.alerts.models import Alert
    from ops.api.models import ApiClient, hash_token

    if not ApiClient.objects.filter(name="bench-alertmanager").exists():
        # The token is fixed, so each round's process can use it.
        client_row, _ = ApiClient.issue("bench-alertmanager", "alerts")
        ApiClient.objects.filter(pk=client_row.pk).update(token_hash=hash_token(TOKEN))
    old = Alert.objects.count()
    if old < stored:
        # Older occurrences, resolved, with distinct fingerprints above the storm's range.
        # Loaded directly (the intake's own row builder), not timed.
        from ops.alerts.intake import _new_row, parse_notification

        now = timezone.now()
        incoming = parse_notification(
            notification([alert(10**9 + n, f"Old{n % 40}") for n in range(old, stored)])
        )
        Alert.objects.bulk_create([_new_row(item, now) for item in incoming], batch_size=2000)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    base = round_index * POSTS * PER_POST
    posts = [[alert(base + p * PER_POST + n, f"Storm{n}") for n in range(PER_POST)] for p in range(POSTS)]
    result = {"first": [], "again": [], "statements_first": [], "statements_again": [], "writes_again": 0}
    for phase in ("first", "again"):
        for body in posts:
            payload = json.dumps(notification(body))
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.post(
                    "/api/v1/alerts/alertmanager", payload, content_type="application/json"
                )
                elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"webhook answered {response.status_code}: {response.content[:300]!r}")
            result[phase].append(elapsed * 1000)
            result[f"statements_{phase}"].append(len(queries.captured_queries))
            if phase == "again":
                result["writes_again"] += sum(
                    q["sql"].lstrip().upper().startswith(WRITES) for q in queries.captured_queries
                )
    result["rows"] = Alert.objects.count()
    result["storm_rows"] = Alert.objects.filter(alertname__startswith="Storm").count()
    Alert.objects.filter(alertname__startswith="Storm").delete()
    return result


def run_round(url: str, stored: int, round_index: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(stored), str(round_index)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench", "ALLOWED_HOSTS": "testserver"},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"round failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", nargs=2, type=int, metavar=("STORED", "ROUND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    sizes = (1_000, 100_000)
    results: dict[int, list[dict]] = {size: [] for size in sizes}
    with (
        fresh_database("investiq_bench_storm_1k") as small,
        fresh_database("investiq_bench_storm_100k") as big,
    ):
        urls = dict(zip(sizes, (small, big), strict=True))
        for size in sizes:  # load once, outside the timed rounds
            run_round(urls[size], size, 0)
        for index in range(1, args.rounds + 1):
            for size in sizes:
                results[size].append(run_round(urls[size], size, index))
    medians = {}
    for size in sizes:
        rounds = results[size]
        first = [ms for r in rounds for ms in r["first"]]
        again = [ms for r in rounds for ms in r["again"]]
        medians[size] = statistics.median(first) / PER_POST
        print(
            f"{size:>7} stored: first delivery median {statistics.median(first):.1f} ms/post "
            f"({medians[size]:.3f} ms/alert, "
            f"{statistics.median(sum(r['first']) for r in rounds):.0f} ms per 1,000), "
            f"redelivery median {statistics.median(again):.1f} ms/post; "
            f"statements/post {sorted({s for r in rounds for s in r['statements_first']})} first, "
            f"{sorted({s for r in rounds for s in r['statements_again']})} again; "
            f"writes on redelivery {sum(r['writes_again'] for r in rounds)}; "
            f"storm rows stored {sorted({r['storm_rows'] for r in rounds})}, table {rounds[-1]['rows']}"
        )
    print(f"ms per alert, 100k / 1k: {medians[100_000] / medians[1_000]:.3f} (target <= 1.5)")


if __name__ == "__main__":
    main()
