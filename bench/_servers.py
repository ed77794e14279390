"""Shared pieces of the benchmarks: throwaway Postgres databases and gunicorn servers."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

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
    """A migrated, empty database, dropped afterwards."""
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
