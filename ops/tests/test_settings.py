"""Settings are checked in fresh interpreters: they are read once, at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, env: dict[str, str], newcomer: bool = False) -> subprocess.CompletedProcess:
    """manage.py in a fresh interpreter; `newcomer` also drops every service URL, as on a
    laptop where nothing is configured."""
    dropped = {"SECRET_KEY", "DEBUG"}
    if newcomer:
        dropped |= {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "INVESTIQ_VAR_DIR"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_deployment_refuses_to_start_without_secret_key():
    result = run_manage("check", env={"DATABASE_URL": "postgres://investiq@db.internal:5432/investiq"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_the_documented_commands_work_on_the_embedded_default_without_exports(tmp_path):
    # A newcomer runs `manage.py trading status` outside `make run`: no DEBUG, no
    # SECRET_KEY, no DATABASE_URL. A key is generated once under var/ and reused.
    env = {"INVESTIQ_VAR_DIR": str(tmp_path)}
    assert run_manage("migrate", "-v0", env=env, newcomer=True).returncode == 0
    result = run_manage("trading", "status", env=env, newcomer=True)
    assert result.returncode == 0, result.stderr
    assert "global" in result.stdout
    # No deployment warnings (SQLite, file broker, metrics token) for a laptop.
    assert "ops.W00" not in result.stderr
    key_file = tmp_path / "secret_key"
    key = key_file.read_text()
    assert len(key) >= 50 and key_file.stat().st_mode & 0o777 == 0o600
    assert run_manage("check", env=env, newcomer=True).returncode == 0
    assert key_file.read_text() == key


def test_debug_mode_starts_without_a_secret_key():
    result = run_manage("check", env={"DEBUG": "true"})
    assert result.returncode == 0, result.stderr


PRODUCTION_LIKE = {
    "SECRET_KEY": "k" * 20 + "production-like-secret-key-with-entropy-0123456789",
    "ALLOWED_HOSTS": "ops.investiq.example",
    "CSRF_TRUSTED_ORIGINS": "https://ops.investiq.example",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_PROXY_SSL_HEADER": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "DATABASE_URL": "postgres://investiq@db.internal:5432/investiq",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "METRICS_TOKEN": "metrics-token-for-prometheus",
}


def test_check_deploy_is_clean_with_a_production_like_environment():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_LIKE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_memory_broker_is_a_configuration_error():
    result = run_manage("check", env={"DEBUG": "true", "CELERY_BROKER_URL": "memory://"})
    assert result.returncode != 0
    assert "ops.E001" in result.stderr


def test_sqlite_outside_debug_is_reported():
    env = {**PRODUCTION_LIKE, "DATABASE_URL": "sqlite:////tmp/investiq-check.sqlite3"}
    result = run_manage("check", "--deploy", env=env)
    assert "ops.W001" in result.stdout + result.stderr


SQLITE_PRAGMAS = """
import threading
from django.db import connection, connections

def options():
    with connection.cursor() as cursor:
        names = ("journal_mode", "synchronous", "busy_timeout")
        found = [cursor.execute(f"PRAGMA {name}").fetchone()[0] for name in names]
    return [*found, connection.transaction_mode]

seen = [options()]
thread = threading.Thread(target=lambda: (seen.append(options()), connections.close_all()))
thread.start()
thread.join()
print(seen)
"""


def test_every_embedded_default_connection_is_wal_immediate_with_a_busy_timeout(tmp_path):
    # A management command's connection and a second thread's (as gunicorn's and the
    # Celery thread pool's): WAL, synced commits, 20 s busy timeout, BEGIN IMMEDIATE.
    env = {"INVESTIQ_VAR_DIR": str(tmp_path)}
    assert run_manage("migrate", "-v0", env=env, newcomer=True).returncode == 0
    result = run_manage("shell", "-c", SQLITE_PRAGMAS, env=env, newcomer=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str([["wal", 2, 20000, "IMMEDIATE"]] * 2)
