"""Configuration mistakes reported by `manage.py check` before anything runs."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


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
    (investiq/config.py); an engine request may first wait DB_POOL_TIMEOUT for a slot
    and as long for a connection. If gunicorn's worker timeout comes first, the client gets a
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
    # An engine request may first wait for a connection slot (ops.api.admission), then for
    # a pooled connection: each up to DB_POOL_TIMEOUT.
    pool_wait = 2 * settings.DB_POOL_TIMEOUT if options.get("pool") else 0
    worst = pool_wait + max(user_timeout, idle + user_timeout) + connect_timeout
    if worst >= worker_timeout:
        return (
            f"2 x DB_POOL_TIMEOUT ({pool_wait:g}s) + keepalives_idle ({idle:g}s) + tcp_user_timeout "
            f"({user_timeout:g}s) + connect_timeout ({connect_timeout:g}s) is not below "
            f"GUNICORN_TIMEOUT ({worker_timeout}s)"
        )
    return None


def connection_budget() -> tuple[int, str]:
    """The most connections this deployment's processes may hold at once, and the sum.

    Every process holds at most DB_POOL_SIZE (investiq/settings.py): per app host, each
    gunicorn worker (WEB_CONCURRENCY), each Celery worker process (CELERY_WORKER_CONCURRENCY,
    prefork; counted the same with threads, an upper bound) and beat; plus the connections
    kept for shells (DB_SHELL_CONNECTIONS: `manage.py trading halt`, migrate, a psql).
    """
    web = int(os.environ.get("WEB_CONCURRENCY", "3"))  # gunicorn.conf.py's variable
    processes = web + settings.CELERY_WORKER_CONCURRENCY + 1
    pool = settings.DB_POOL_SIZE
    total = settings.APP_HOSTS * processes * pool + settings.DB_SHELL_CONNECTIONS
    text = (
        f"{settings.APP_HOSTS} host(s) x ({web} web + {settings.CELERY_WORKER_CONCURRENCY} worker "
        f"+ 1 beat) x DB_POOL_SIZE {pool} + DB_SHELL_CONNECTIONS {settings.DB_SHELL_CONNECTIONS} = {total}"
    )
    return total, text


def _admitted_connections(databases) -> tuple[int, str]:
    """What the server admits to the app: read from it under `check --database default`,
    else DB_MAX_CONNECTIONS."""
    if databases and "default" in databases:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT name, setting::int FROM pg_settings "
                "WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
            )
            values = dict(cursor.fetchall())
        reserved = values.get("superuser_reserved_connections", 0) + values.get("reserved_connections", 0)
        return values["max_connections"] - reserved, (
            f"the server's max_connections {values['max_connections']} less {reserved} reserved slots"
        )
    return settings.DB_MAX_CONNECTIONS, f"DB_MAX_CONNECTIONS {settings.DB_MAX_CONNECTIONS}"


@register(Tags.database)
def check_connection_budget_on_the_server(app_configs, databases=None, **kwargs):
    """`manage.py check --database default`: the budget against the server's own numbers."""
    if not databases or "default" not in databases or not _pooled():
        return []
    return _budget_problems(databases)


@register()
def check_connection_budget(app_configs, databases=None, **kwargs):
    if not _pooled():
        return []
    problems = []
    if settings.DB_POOL_RESERVE >= settings.DB_POOL_SIZE:
        problems.append(
            Error(
                f"DB_POOL_RESERVE ({settings.DB_POOL_RESERVE}) leaves the trading engine no connection "
                f"of DB_POOL_SIZE ({settings.DB_POOL_SIZE}).",
                hint="The reserve is the part of each process's pool that API traffic may not take: "
                "keep it below DB_POOL_SIZE (default 1 of 4).",
                id="ops.E005",
            )
        )
    if databases and "default" in databases:
        return problems  # the database check compares with the server's own numbers
    return problems + _budget_problems(None)


def _pooled() -> bool:
    return bool(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"))


def _budget_problems(databases) -> list:
    total, text = connection_budget()
    admitted, source = _admitted_connections(databases)
    if total <= admitted:
        return []
    return [
        Warning(
            f"The connection budget does not fit: {text}, above {source}.",
            hint="Under load the last processes to connect (or a shell's halt) would get "
            "'too many clients'. Lower DB_POOL_SIZE or the process counts, or raise the server's "
            "max_connections (and DB_MAX_CONNECTIONS). README: Database connections.",
            id="ops.W005",
        )
    ]


def missing_triggers(connection) -> list[str]:
    """The triggers every migrated database must hold that this one lacks: the metric
    counters (migration 0005) and the append-only guards (ops.guards), as "table.trigger".
    SQLite's table rebuilds have dropped both kinds before."""
    import importlib

    from django.apps import apps

    from ops import guards

    counters = importlib.import_module("ops.migrations.0005_metric_counter_triggers").COUNTERS
    expected = {(table, f"ops_count_{name}") for name, table, _ in counters}
    expected |= guards.expected_guards(connection, apps.get_app_config("ops").get_models())
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
    present = guards.triggers_in(connection)
    return sorted(f"{table}.{name}" for table, name in expected - present if table in tables)


@register(Tags.database)
def check_triggers(app_configs, databases=None, **kwargs):
    """`manage.py check --database default` (and migrate, before it runs)."""
    from django.db import connections

    if not databases or "default" not in databases:
        return []
    missing = missing_triggers(connections["default"])
    if not missing:
        return []
    return [
        Warning(
            f"Database triggers are missing: {', '.join(missing)}. Without them trades are not "
            "counted in /metrics, or the audit trail can be rewritten.",
            hint="Run `manage.py migrate`: it puts the append-only guards back. A missing "
            "ops_count_* trigger needs the counter migration (0005) re-applied.",
            id="ops.W006",
        )
    ]


@register(Tags.database)
def check_killswitch_role(app_configs, databases=None, **kwargs):
    """`manage.py check --database default`: KILLSWITCH_DATABASE_URL, when set, can halt."""
    if not databases or "default" not in databases or not settings.KILLSWITCH_DATABASE_URL:
        return []
    problem = killswitch_role_problem()
    if problem is None:
        return []
    return [
        Warning(
            f"KILLSWITCH_DATABASE_URL cannot halt on a full server: {problem}.",
            hint="It names the app's database with a role Postgres lets into its reserved slots "
            "(a superuser; from Postgres 16 a member of pg_use_reserved_connections) and that may "
            "write the kill switch's tables (e.g. GRANT the app's role to it). README: Database "
            "connections.",
            id="ops.W007",
        )
    ]


# What a halt, a resume request and a broker cancellation write, and read.
KILLSWITCH_TABLES = ("ops_tradingstate", "ops_tradingevent", "ops_resumerequest", "ops_brokercancellation")


def killswitch_role_problem() -> str | None:
    import psycopg
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connection

    from ops.db import killswitch_settings

    try:
        target = killswitch_settings(connection.settings_dict)
    except ImproperlyConfigured as exc:
        return str(exc)
    params = {**connection.get_connection_params(), "dbname": connection.settings_dict["NAME"]}
    params |= {
        key.lower(): value for key, value in target.items() if key in ("USER", "PASSWORD", "HOST", "PORT")
    }
    params = {key: value for key, value in params.items() if value not in ("", None)}
    try:
        with psycopg.connect(**params) as conn:
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[
                0
            ]
            reserved = conn.execute(
                # The role exists from Postgres 16 on; CASE keeps pg_has_role() off older ones.
                "SELECT CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = %(role)s) "
                "THEN pg_has_role(current_user, %(role)s, 'member') ELSE false END",
                {"role": "pg_use_reserved_connections"},
            ).fetchone()[0]
            missing = [
                table
                for table in KILLSWITCH_TABLES
                if not conn.execute(
                    "SELECT has_table_privilege(%s, 'SELECT, INSERT, UPDATE')", [table]
                ).fetchone()[0]
            ]
    except psycopg.Error as exc:
        return f"it does not connect ({str(exc).strip().splitlines()[0]})"
    if not (superuser or reserved):
        return "its role is neither a superuser nor a member of pg_use_reserved_connections"
    if missing:
        return f"its role may not write {', '.join(missing)}"
    return None


@register()
def check_alert_actions(app_configs, **kwargs):
    import re

    from ops.alerts.actions import NEVER_ACTED_ON, parse_action

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
            if name in NEVER_ACTED_ON:
                raise ValueError(f"{name} is never acted on: a drill or the heartbeat must not halt trading.")
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
