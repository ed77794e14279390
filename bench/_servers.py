"""Shared pieces of the benchmarks: throwaway Postgres databases and gunicorn servers."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
# The scripts run as `python bench/x.py`: make the project importable for the shared helpers.
sys.path.insert(0, str(ROOT))

from ops.tests.processes import free_port, start_process, stop_process, wait_until_ready  # noqa: E402

# A role that may CREATE DATABASE; the databases are dropped again at the end.
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgres://", 1)


@contextlib.contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """A migrated, empty database, dropped afterwards.

    A random suffix makes the name this run's own: the first thing done is a forced drop,
    which must never end somebody else's benchmark on the same server (a pid alone may
    repeat in another container). A killed run leaves its database: `investiq_bench_*`.
    """
    name = f"{name}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=ROOT,
            check=True,
            env={**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench"},
        )
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def execute(url: str, sql: str, params: tuple = ()) -> None:
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        conn.execute(sql, params)


@contextlib.contextmanager
def gunicorn(database: str, workers: int = 1, **env: str) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server_env = {
            **os.environ,
            "DATABASE_URL": database,
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": "127.0.0.1",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/prometheus",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        server = start_process(
            ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py", "--access-logfile", "/dev/null"],
            server_env,
            None,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(f"{url}/healthz", server)
            yield url
        finally:
            stop_process(server)


def instructions(script: str, args: list[str], env: dict[str, str]) -> int:
    """Instructions that `python script *args` executes under callgrind (valgrind).

    Repeatable where wall-clock time on these shared machines is not. Each run gets its
    own prometheus_client multiprocess folder and the same hash seed (dict layouts, and
    so instruction counts, then repeat).
    """
    with tempfile.TemporaryDirectory() as multiproc:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script, *args],
            env={**env, "PROMETHEUS_MULTIPROC_DIR": multiproc, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            check=True,
        ).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def wrk(url: str, seconds: int, *options: str, script_args: tuple[str, ...] = ()) -> float:
    """Requests per second that wrk gets from `url`.

    One wrk thread and 4 connections against one gunicorn worker: each gets one of the
    two cores, so what is measured is the server, not its fight with the load generator.
    A non-2xx answer aborts the run: a server that refuses is fast for the wrong reason.
    """
    out = subprocess.run(
        ["wrk", "-t1", "-c4", f"-d{seconds}s", *options, url, *(("--", *script_args) if script_args else ())],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def side_by_side(measure: Callable[[str, int], float], first: str, second: str, rounds: int) -> float:
    """measure(name, round) for both, in alternating order; prints them and returns the
    median of the per-round ratios first / second.

    Each round's pair runs back to back under the same load, so the per-round ratio
    cancels most of the machine's drift; its median is the figure to compare.
    """
    results: dict[str, list[float]] = {first: [], second: []}
    for round_ in range(rounds):
        # Alternate which goes first, so neither always gets the quieter slot.
        for name in (first, second) if round_ % 2 == 0 else (second, first):
            results[name].append(measure(name, round_))
    for name, values in results.items():
        rounds_text = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:>8}: median {statistics.median(values):7.1f} req/s  rounds {rounds_text}")
    ratios = [a / b for a, b in zip(results[first], results[second], strict=True)]
    print(f"per-round ratios: {', '.join(f'{r:.3f}' for r in ratios)}")
    return statistics.median(ratios)


def add_api_token(database: str, token: str) -> None:
    """An API client for `token` with every scope, written straight into `database`."""
    execute(
        database,
        "INSERT INTO ops_apiclient (name, token_hash, token_hint, is_active, scopes, created_at) "
        "VALUES ('bench', %s, 'iq_bench', true, 'trades,analyses,status', now())",
        (hashlib.sha256(token.encode()).hexdigest(),),
    )


# wrk posting one unique client_order_id per request: prefix (per round and URL) + a counter.
WRK_TRADES_SCRIPT = """
local prefix, n = "x", 0
function init(args) prefix = args[1] end
function request()
  n = n + 1
  local body = string.format('{"client_order_id": "%s-%d", "symbol": "AAPL", "side": "buy", '
    .. '"quantity": "1", "price": "100.5", "strategy": "momentum"}', prefix, n)
  return wrk.format("POST", nil, nil, body)
end
"""


@dataclass
class Answer:
    started: float  # time.monotonic(): one clock for every process on Linux
    ended: float
    status: int | str  # HTTP status, or the exception's name when no answer came


@contextlib.contextmanager
def posting_trades(
    base: str, token: str, clients: int, answers: list[Answer], prefix: str, *, new_connections: bool = False
) -> Iterator[list[str]]:
    """CLIENTS threads posting unique trades to `base` without pause until the block ends,
    each answer appended to `answers`. Yields a list that collects the first few errors.

    new_connections: a new TCP connection per request (runserver then starts a thread per
    request); otherwise each client keeps its connection, as an engine's HTTP client does.
    """
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        if new_connections:
            session.headers["Connection"] = "close"
        for n in itertools.count():
            if stop.is_set():
                return
            started = time.monotonic()
            try:
                status = session.post(
                    f"{base}/api/v1/trades",
                    timeout=60,
                    json={
                        "client_order_id": f"{prefix}-{index}-{n}",
                        "symbol": "AAPL",
                        "side": "buy",
                        "quantity": "1",
                        "price": "100",
                        "strategy": "bench",
                    },
                ).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
                with lock:
                    if len(errors) < 3:
                        errors.append(str(exc)[:300])
            with lock:
                answers.append(Answer(started, time.monotonic(), status))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield errors
    finally:
        stop.set()
        for thread in threads:
            thread.join()
