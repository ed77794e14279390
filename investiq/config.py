"""What settings.py computes rather than reads: the embedded default's key, each database
backend's options, the filesystem broker's folders, beat's schedule.

Every environment variable read here is named whole, as in settings.py, so that the
.env.example test finds it (ops/tests/test_env_example.py reads both modules). Why each
value is what it is: docs/settings.md.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured


def local_secret_key(path: Path) -> str:
    """The key of this checkout's embedded default, created on first use (owner-only)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole, then linked: the first of several starting processes wins (docs/settings.md).
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(50))
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()


def database(url: dict, env: environ.Env, var_dir: Path, pool_size: int, pool_timeout: float) -> dict:
    """DATABASE_URL's backend, wrapped by django-prometheus (the django_db_* families; on
    Postgres through ops.db.postgresql, which keeps the pool's per-request cost down),
    with the options of SQLite or of Postgres."""
    url["ENGINE"] = (
        url["ENGINE"]
        .replace("django.db.backends.postgresql", "ops.db.postgresql")
        .replace("django.db.backends.", "django_prometheus.db.backends.")
    )
    url["CONN_HEALTH_CHECKS"] = True
    # Pooled Postgres sets it to 0 below: the pool keeps the connections.
    url["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    if url["ENGINE"].endswith("sqlite3"):
        _configure_sqlite(url, var_dir)
    else:
        _configure_postgres(url, env, pool_size, pool_timeout)
    return url


def _configure_sqlite(settings_dict: dict, var_dir: Path) -> None:
    """One file shared by every process; each option's reason: docs/settings.md, "SQLite"."""
    options = settings_dict.setdefault("OPTIONS", {})
    options.setdefault("transaction_mode", "IMMEDIATE")
    options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")
    options.setdefault("timeout", 20)
    var_dir.mkdir(parents=True, exist_ok=True)
    settings_dict.setdefault("TEST", {}).setdefault("NAME", str(var_dir / "test-investiq.sqlite3"))


def _configure_postgres(settings_dict: dict, env: environ.Env, pool_size: int, pool_timeout: float) -> None:
    """libpq's TCP guards, the same guards on the server's end, and the pool: the
    sections "Postgres: ..." of docs/settings.md."""
    options = settings_dict.setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
    tcp_user_timeout = env.int("DB_TCP_USER_TIMEOUT_MS", default=10_000)
    options.setdefault("tcp_user_timeout", tcp_user_timeout)
    keepalives = env.bool("DB_KEEPALIVES", default=True)
    keepalive_timings = {
        "idle": env.int("DB_KEEPALIVES_IDLE", default=5),
        "interval": env.int("DB_KEEPALIVES_INTERVAL", default=5),
        "count": env.int("DB_KEEPALIVES_COUNT", default=3),
    }
    options.setdefault("keepalives", int(keepalives))
    for name, value in keepalive_timings.items():
        # 0: the kernel's value, which libpq would pass to setsockopt() and fail.
        if value:
            options.setdefault(f"keepalives_{name}", value)
    server_settings = {
        # A stuck query must not hold a gunicorn worker (or the trade gate) forever.
        "statement_timeout": env.int("DB_STATEMENT_TIMEOUT_MS", default=5000),
        "tcp_user_timeout": tcp_user_timeout,
    }
    if keepalives:
        server_settings |= {f"tcp_keepalives_{name}": value for name, value in keepalive_timings.items()}
    # Ours first, so the URL's own ?options= win.
    options["options"] = " ".join(
        [*(f"-c {name}={value}" for name, value in server_settings.items()), options.get("options", "")]
    ).strip()
    if pool_size:
        # At most pool_size connections per process: docs/settings.md, "pool".
        hold = env.bool("DB_POOL_HOLD", default=False)
        settings_dict["CONN_MAX_AGE"] = 0  # the pool keeps them
        options["pool"] = {
            "min_size": pool_size if hold else 1,
            "max_size": pool_size,
            "max_lifetime": 24 * 3600.0 if hold else 3600.0,
            "timeout": pool_timeout,
            "reconnect_timeout": pool_timeout,
            "name": "investiq",
        }


def filesystem_broker_options(var_dir: Path) -> dict:
    """The laptop default: a broker that needs no server (memory:// cannot cross the
    worker/beat process boundary). Both directions use one folder."""
    folder = var_dir / "celery-broker"
    (folder / "processed").mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder / "processed"),
        # kombu's default is ./control, i.e. wherever the process was started.
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def beat_schedule(probe_interval_seconds: int, drill_schedule: str) -> dict:
    """What the one `celery beat` runs. A second beat would be harmless for the probes
    (ops.health.service.periodic_cycle), but would double the rest."""
    schedule = {
        "probe-dependencies": {
            "task": "ops.health.tasks.probe_dependencies",
            "schedule": float(probe_interval_seconds),
            # A cycle still queued after one interval is stale: the next one is due.
            "options": {"expires": float(probe_interval_seconds)},
        },
        "prune-dependency-history": {
            "task": "ops.health.tasks.prune_dependency_history",
            "schedule": 3600.0,
            "options": {"expires": 3600.0},
        },
        # Re-queues broker cancellations whose task was lost (ops.trading.broker).
        "sweep-broker-cancellations": {
            "task": "ops.trading.tasks.sweep_broker_cancellations",
            "schedule": 60.0,
            "options": {"expires": 60.0},
        },
    }
    if drill_schedule:
        schedule["kill-switch-drill"] = {
            "task": "ops.drill.tasks.scheduled_drill",
            "schedule": drill_crontab(drill_schedule),
            # A drill queued but not started within an hour is skipped: the next one is due.
            "options": {"expires": 3600.0},
        }
    return schedule


def drill_crontab(line: str) -> crontab:
    """DRILL_SCHEDULE's crontab line as beat's schedule; a malformed one stops start-up."""

    try:
        if len(line.split()) != 5:
            raise ValueError("five fields expected")
        return crontab(*line.split())
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"DRILL_SCHEDULE={line!r} is not a crontab line 'minute hour day month weekday' "
            f"(e.g. '0 6 * * 1' for Mondays 06:00 UTC): {exc}"
        ) from None
