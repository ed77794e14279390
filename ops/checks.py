"""Configuration mistakes reported by `manage.py check` before anything runs."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Warning, register


def _deployed() -> bool:
    """Deployment warnings apply unless this is DEBUG or the embedded default (a laptop
    with neither DATABASE_URL nor SECRET_KEY set, where they would only be noise)."""
    return not (settings.DEBUG or settings.EMBEDDED_DEFAULT)


@register()
def check_database(app_configs, **kwargs):
    engine = settings.DATABASES["default"]["ENGINE"]
    if _deployed() and engine.endswith("sqlite3"):
        return [
            Warning(
                "SQLite is the database of a deployment (SECRET_KEY set, DEBUG off).",
                hint="Set DATABASE_URL=postgres://... : halts and trades need Postgres's "
                "row locks and concurrent writers in production.",
                id="ops.W001",
            )
        ]
    return []


@register()
def check_broker(app_configs, **kwargs):
    url = settings.CELERY_BROKER_URL
    problems = []
    if url.startswith("memory://"):
        problems.append(
            Error(
                "CELERY_BROKER_URL is memory://, which cannot carry tasks between processes.",
                hint="Use REDIS_URL=redis://..., or leave both unset for the file-system broker.",
                id="ops.E001",
            )
        )
    elif url.startswith("filesystem://") and _deployed():
        problems.append(
            Warning(
                "The Celery broker is the local file-system transport in a deployment.",
                hint="Set REDIS_URL (or CELERY_BROKER_URL) so workers on other hosts get tasks.",
                id="ops.W002",
            )
        )
    if settings.CELERY_TASK_SOFT_TIME_LIMIT >= settings.CELERY_TASK_TIME_LIMIT:
        problems.append(
            Error(
                "CELERY_TASK_SOFT_TIME_LIMIT is not below CELERY_TASK_TIME_LIMIT.",
                hint="The soft limit must fire first so a task can clean up before it is killed.",
                id="ops.E002",
            )
        )
    return problems


@register()
def check_metrics_token(app_configs, **kwargs):
    if _deployed() and not settings.METRICS_TOKEN:
        return [
            Warning(
                "METRICS_TOKEN is not set: /metrics is open to anyone who can reach the web port.",
                hint="Set METRICS_TOKEN and give Prometheus the same value in a credentials_file.",
                id="ops.W003",
            )
        ]
    return []


@register()
def check_probe_timing(app_configs, **kwargs):
    from ops.health.runner import cycle_deadline, task_time_limits

    # The probe task's soft limit would cut a cycle short: its results never recorded.
    _, soft_limit = task_time_limits(settings.PROBE_INTERVAL_SECONDS)
    if cycle_deadline() >= soft_limit:
        return [
            Error(
                f"A probe cycle may take {cycle_deadline():g}s, not less than the probe task's soft time "
                f"limit of {soft_limit}s (set by PROBE_INTERVAL_SECONDS={settings.PROBE_INTERVAL_SECONDS}).",
                hint="Lower PROBE_CONNECT_TIMEOUT / PROBE_READ_TIMEOUT or raise PROBE_INTERVAL_SECONDS.",
                id="ops.E003",
            )
        ]
    return []


@register()
def check_database_guards(app_configs, **kwargs):
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        return []  # a local file: no network to be cut from
    # gunicorn.conf.py reads the same variable with the same default.
    setting = os.environ.get("GUNICORN_TIMEOUT", "30")
    try:
        problem = partition_guard_problem(settings.DATABASES["default"], int(setting))
    except ValueError:
        problem = f"GUNICORN_TIMEOUT ({setting!r}) or a database TCP guard option is not a number"
    if problem is None:
        return []
    return [
        Warning(
            f"{problem}: in a network partition from the database gunicorn kills the worker "
            "before the gate can answer 503 trading_state_unavailable.",
            hint="Lower DB_TCP_USER_TIMEOUT_MS / DB_CONNECT_TIMEOUT / DB_KEEPALIVES_IDLE "
            "or raise GUNICORN_TIMEOUT.",
            id="ops.W004",
        )
    ]


def partition_guard_problem(database: dict, worker_timeout: int) -> str | None:
    """A request against a database host that vanished from the network ends after
    tcp_user_timeout if it has data unacknowledged, or after keepalives_idle plus about
    tcp_user_timeout if it waits for a result; plus connect_timeout for the reconnect
    (investiq/settings.py). If gunicorn's worker timeout comes first, the client gets a
    killed worker's reset connection instead of the gate's 503, and the worker is
    replaced. Raises ValueError for an option that is not a number."""
    if database["ENGINE"].endswith("sqlite3"):
        return None
    options = database.get("OPTIONS", {})
    # Values may be strings (a DATABASE_URL's query parameters that are not all digits).
    user_timeout = float(options.get("tcp_user_timeout") or 0) / 1000
    connect_timeout = float(options.get("connect_timeout") or 0)
    keepalives = int(options.get("keepalives", 1))
    idle = float(options.get("keepalives_idle") or 0)
    if not user_timeout:
        return "tcp_user_timeout is off: a vanished database host holds a request ~15 minutes"
    if not connect_timeout:
        return "connect_timeout is off: a connection attempt to a vanished host waits for the kernel"
    # libpq waits at least 2 s per address tried.
    connect_timeout = max(connect_timeout, 2)
    if not (keepalives and idle):
        return (
            "keepalives are off or at the kernel's timing (a first probe after 2 hours): a request "
            "waiting for a result from a vanished host is not ended"
        )
    worst = max(user_timeout, idle + user_timeout) + connect_timeout
    if worst >= worker_timeout:
        return (
            f"keepalives_idle ({idle:g}s) + tcp_user_timeout ({user_timeout:g}s) + connect_timeout "
            f"({connect_timeout:g}s) is not below GUNICORN_TIMEOUT ({worker_timeout}s)"
        )
    return None


@register()
def check_alert_actions(app_configs, **kwargs):
    import re

    from ops.alerts.actions import parse_action

    actions = settings.ALERT_ACTIONS
    if not isinstance(actions, dict):
        return [
            Error(
                "ALERT_ACTIONS is not a JSON object.",
                hint='Example: ALERT_ACTIONS=\'{"BrokerUnreachable": "global:HALTED"}\'',
                id="ops.E004",
            )
        ]
    problems = []
    for name, action in actions.items():
        try:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,79}", name):
                raise ValueError(f"{name!r} is not an alert name (letters, digits, _; at most 80).")
            parse_action(action)
        except ValueError as exc:
            problems.append(
                Error(
                    f"ALERT_ACTIONS[{name!r}]: {exc}",
                    hint="Map alert names to '<scope>:HALTED' or '<scope>:REDUCING', scope being "
                    "global, strategy:<name> or symbol:<TICKER>.",
                    id="ops.E004",
                )
            )
    return problems
