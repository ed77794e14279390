"""P4 halt race: trades posted by many clients while the global scope is halted and
resumed again and again, on Postgres (16 clients) and on the embedded default (SQLite,
8 clients), side by side in one run.

Run from the README's venv, with the machine's Postgres:
    .venv/bin/python bench/halt_race.py [--rounds 30] [--trading 0.25] [--halted 1.0] [--workers 3]
        [--only postgres,sqlite,sqlite-before,sqlite-normal]

Each backend gets a fresh database and a gunicorn server (3 sync workers, as `make
run`). Client threads post unique trades to POST /api/v1/trades without pause. A
separate process (a shell's, like `manage.py trading halt`) calls the kill switch's
service: wait `--trading` s, halt global, wait `--halted` s, resume, `--rounds` times;
two-person resume is off for it (TRADING_TWO_PERSON_RESUME=false). Printed per backend:
- accepted after a halt returned: 201s among requests that started after a halt
  returned and ended before the next resume began (target 0);
- 5xx answers and failed requests (target 0);
- halts that failed ("database is locked"), and resumes that needed a retry;
- the halt's own latency under that load (the service call in that process), p50/p99.
Variants: sqlite-before has main's SQLite options from before issue 12; sqlite-normal
has synchronous=NORMAL instead of FULL (bench/_sqlite_variants.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from _servers import ROOT, Answer, fresh_database, gunicorn, posting_trades

CLIENTS = {"postgres": 16, "sqlite": 8, "sqlite-before": 8, "sqlite-normal": 8}
VARIANT_SETTINGS = {"sqlite-before": "before", "sqlite-normal": "synchronous-normal"}


@dataclass
class Race:
    name: str
    clients: int
    answers: list[Answer] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)


# --- the halting process ------------------------------------------------------------------


def halter(rounds: int, trading: float, halted: float) -> None:
    """Runs in its own process on the backend's settings; prints one JSON line per round.

    Times come from time.monotonic(), which on Linux is one clock for every process, so
    the driver can compare them with its clients' request times.
    """
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "investiq.settings")
    django.setup()
    from ops.trading import service

    actor = service.Actor.system("bench", service.HALT, service.RESUME)
    for number in range(rounds):
        time.sleep(trading)  # trades flowing
        row = {"round": number, "halt_error": None, "resume_retries": 0}
        row["halt_started"] = time.monotonic()
        try:
            service.halt("global", reason=f"bench round {number}", actor=actor)
        except Exception as exc:  # the figure to report, not a reason to stop
            row["halt_error"] = f"{type(exc).__name__}: {exc}"
        row["halt_returned"] = time.monotonic()
        time.sleep(halted)  # trades refused
        row["resume_started"] = time.monotonic()
        for retry in itertools.count():
            # A failed resume would leave the next halt nothing to do: retry it (counted).
            try:
                service.resume("global", reason=f"bench round {number}", actor=actor)
                break
            except Exception:
                row["resume_retries"] = retry + 1
                if retry == 50:
                    raise
                time.sleep(0.05)
        print(json.dumps(row), flush=True)


# --- the driver -----------------------------------------------------------------------------


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@contextlib.contextmanager
def backend(name: str, tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh, migrated database for `name` and the environment its processes share."""
    env = {
        "INVESTIQ_VAR_DIR": str(tmp / "var"),  # broker folder, secret key: not the checkout's
        "SECRET_KEY": "bench",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "filesystem://",
        "TRADING_TWO_PERSON_RESUME": "false",
        "LOG_LEVEL": "ERROR",
    }
    if name == "postgres":
        with fresh_database("investiq_bench_halt_race") as url:
            yield url, {**env, "DATABASE_URL": url}
        return
    url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    env["DATABASE_URL"] = url
    if name in VARIANT_SETTINGS:
        env["DJANGO_SETTINGS_MODULE"] = "bench._sqlite_variants"
        env["BENCH_SQLITE_VARIANT"] = VARIANT_SETTINGS[name]
    manage(env, "migrate", "-v0")
    yield url, env


def race(name: str, rounds: int, trading: float, halted: float, workers: int) -> Race:
    result = Race(name, CLIENTS[name])
    with tempfile.TemporaryDirectory() as tmp, backend(name, Path(tmp)) as (url, env):
        token = manage(env, "create_api_token", "bench").strip()
        # gunicorn() takes os.environ and the server's own settings; ours go on top.
        server_env = {key: value for key, value in env.items() if key != "DATABASE_URL"}
        with (
            gunicorn(url, workers=workers, **server_env) as base,
            posting_trades(base, token, result.clients, result.answers, name),
        ):
            halting = subprocess.run(
                [
                    *(sys.executable, __file__, "--halter", "--rounds", str(rounds)),
                    *("--trading", str(trading), "--halted", str(halted)),
                ],
                cwd=ROOT,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
            )
    if halting.returncode != 0:
        raise RuntimeError(f"{name}: the halting process failed:\n{halting.stderr[-3000:]}")
    result.rounds = [json.loads(line) for line in halting.stdout.splitlines()]
    return result


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(race: Race) -> None:
    statuses = [answer.status for answer in race.answers]
    after, accepted_after = 0, 0
    for row in race.rounds:
        if row["halt_error"]:
            continue
        # Started after the halt returned and answered before the resume began: the
        # halt's promise covers exactly these.
        window = [
            a for a in race.answers if row["halt_returned"] < a.started and a.ended < row["resume_started"]
        ]
        after += len(window)
        accepted_after += sum(1 for a in window if a.status == 201)
    failed = [row for row in race.rounds if row["halt_error"]]
    locked = sum(1 for row in failed if "database is locked" in row["halt_error"])
    latencies = [
        (row["halt_returned"] - row["halt_started"]) * 1000 for row in race.rounds if not row["halt_error"]
    ]
    five_xx = sum(1 for s in statuses if isinstance(s, int) and s >= 500)
    no_answer = sum(1 for s in statuses if not isinstance(s, int))
    span = race.answers[-1].ended - race.answers[0].started if race.answers else 0
    print(f"\n== {race.name}: {race.clients} clients, {len(race.rounds)} halt/resume rounds")
    print(
        f"   requests {len(statuses)} in {span:.1f} s: "
        + ", ".join(f"{status}: {statuses.count(status)}" for status in sorted(set(statuses), key=str))
    )
    print(f"   accepted after a halt returned: {accepted_after} of {after} requests in those windows")
    print(f"   5xx answers: {five_xx}   requests without an answer: {no_answer}")
    print(
        f"   halts failed: {len(failed)} of {len(race.rounds)} ({locked} 'database is locked')"
        f"   resumes retried: {sum(row['resume_retries'] for row in race.rounds)}"
    )
    if latencies:
        print(
            f"   halt latency ms: p50 {percentile(latencies, 50):.1f}  p99 {percentile(latencies, 99):.1f}"
            f"  max {max(latencies):.1f}  (n={len(latencies)})"
        )
    for row in failed[:3]:
        print(f"   e.g. round {row['round']}: {row['halt_error']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--trading", type=float, default=0.25, help="seconds of trading before each halt")
    # Long enough that requests queued behind gunicorn's workers start and end inside it.
    parser.add_argument("--halted", type=float, default=1.0, help="seconds halted before each resume")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--only", default=",".join(CLIENTS), help=f"comma-separated of {', '.join(CLIENTS)}")
    parser.add_argument("--halter", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.halter:
        halter(args.rounds, args.trading, args.halted)
        return
    for name in args.only.split(","):
        report(race(name.strip(), args.rounds, args.trading, args.halted, args.workers))


if __name__ == "__main__":
    main()
