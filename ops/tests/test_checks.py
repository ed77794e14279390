"""System checks called directly, with settings overridden per test."""

from __future__ import annotations

import pytest
from django.db import connection

from ops.checks import check_database_guards, check_probe_timing, partition_guard_problem
from ops.health.runner import task_time_limits
from ops.health.tasks import probe_dependencies


@pytest.mark.parametrize(
    ("interval", "connect", "read", "refused"),
    [
        (5, 1.0, 3.0, True),  # a 3.15 s cycle; the soft limit (3 s) would cut it short
        (5, 10.0, 2.5, False),  # 2.625 s: the connect timeout never lengthens the cycle
        (15, 2.0, 12.0, False),  # a 12.6 s cycle ends before the soft limit (13 s)
        (15, 2.0, 12.5, True),  # a 13.125 s cycle reaches it
    ],
)
def test_the_timing_check_holds_a_probe_cycle_against_the_tasks_soft_limit(
    settings, interval, connect, read, refused
):
    settings.PROBE_INTERVAL_SECONDS = interval
    settings.PROBE_CONNECT_TIMEOUT, settings.PROBE_READ_TIMEOUT = connect, read
    errors = check_probe_timing(None)
    assert [error.id for error in errors] == (["ops.E003"] if refused else [])


def test_the_probe_task_runs_with_the_limits_the_check_assumes(settings):
    limits = (probe_dependencies.time_limit, probe_dependencies.soft_time_limit)
    assert limits == task_time_limits(settings.PROBE_INTERVAL_SECONDS)


POSTGRES = "django_prometheus.db.backends.postgresql"


@pytest.mark.parametrize(
    ("options", "worker_timeout", "warned"),
    [
        ({}, 30, False),  # the defaults: 5 + 10 + 3 = 18 s, under gunicorn's 30 s
        ({"connect_timeout": "3", "keepalives_idle": "5"}, 18, True),  # strings; 18 s is not under 18
        ({"tcp_user_timeout": 25_000}, 30, True),  # gunicorn kills the worker first
        ({"keepalives_idle": 20}, 30, True),  # a request waiting for a result: 33 s
        ({"tcp_user_timeout": 0}, 30, True),  # no guard: the kernel's ~15 minutes
        ({"connect_timeout": 0}, 30, True),  # a reconnect waits for the kernel
        ({"keepalives": 0}, 30, True),  # a request waiting for a result waits for ever
        ({"keepalives_idle": None}, 30, True),  # the kernel's 2 hours
        (
            {"tcp_user_timeout": 2_000, "connect_timeout": 1, "keepalives_idle": 2},
            60,
            False,
        ),  # the partition tests'
        ({"tcp_user_timeout": 2_000, "connect_timeout": 1, "keepalives_idle": 2}, 6, True),  # libpq waits 2 s
        ({"pool": {"max_size": 4}}, 25, False),  # waits for a slot, then a connection: 3 + 3 + 18 s
        ({"pool": {"max_size": 4}}, 24, True),
    ],
)
def test_the_partition_guard_is_held_against_gunicorns_worker_timeout(
    settings, options, worker_timeout, warned
):
    settings.DB_POOL_TIMEOUT = 3
    defaults = {"tcp_user_timeout": 10_000, "connect_timeout": 3, "keepalives": 1, "keepalives_idle": 5}
    database = {"ENGINE": POSTGRES, "OPTIONS": {**defaults, **options}}
    assert (partition_guard_problem(database, worker_timeout) is not None) is warned


def test_the_partition_guard_check_warns_on_a_value_that_is_not_a_number(monkeypatch):
    monkeypatch.setenv("GUNICORN_TIMEOUT", "thirty")
    expected = [] if connection.vendor == "sqlite" else ["ops.W004"]
    assert [w.id for w in check_database_guards(None)] == expected


def test_the_partition_guard_check_is_quiet_on_sqlite():
    assert partition_guard_problem({"ENGINE": "django_prometheus.db.backends.sqlite3"}, 1) is None


def test_the_partition_guard_check_reads_gunicorns_variable(monkeypatch):
    monkeypatch.setenv("GUNICORN_TIMEOUT", "1")
    expected = [] if connection.vendor == "sqlite" else ["ops.W004"]
    assert [w.id for w in check_database_guards(None)] == expected


@pytest.fixture
def pooled(monkeypatch):
    """As on Postgres with its pool, whatever database this run uses."""
    monkeypatch.setattr("ops.checks._pooled", lambda: True)


@pytest.mark.parametrize(
    ("pool", "web", "workers", "hosts", "most", "warned"),
    [
        (4, 3, 2, 1, 97, False),  # the defaults: (3 web + 2 worker + 1 beat) x 4 + 3 shells = 27
        (16, 3, 2, 1, 97, True),  # 6 x 16 + 3 = 99 > 97
        (4, 8, 4, 3, 97, True),  # three hosts: 3 x (8 + 4 + 1) x 4 + 3 = 159
        (4, 8, 4, 3, 200, False),  # ... on a server that admits 200
    ],
)
def test_the_connection_budget_must_fit_what_the_server_admits(
    settings, monkeypatch, pooled, pool, web, workers, hosts, most, warned
):
    from ops.checks import check_connection_budget

    settings.DB_POOL_SIZE, settings.DB_POOL_RESERVE = pool, 1
    settings.CELERY_WORKER_CONCURRENCY, settings.APP_HOSTS, settings.DB_MAX_CONNECTIONS = workers, hosts, most
    settings.DB_SHELL_CONNECTIONS = 3
    monkeypatch.setenv("WEB_CONCURRENCY", str(web))
    assert [w.id for w in check_connection_budget(None)] == (["ops.W005"] if warned else [])


def test_a_reserve_that_leaves_the_engine_nothing_is_an_error(settings, pooled):
    from ops.checks import check_connection_budget

    settings.DB_POOL_SIZE, settings.DB_POOL_RESERVE = 2, 2
    assert "ops.E005" in [e.id for e in check_connection_budget(None)]


def test_the_server_check_reads_max_connections_from_postgres(settings, db):
    """`manage.py check --database default` compares with the server's own numbers."""
    from ops.checks import check_connection_budget, check_connection_budget_on_the_server

    if connection.vendor != "postgresql":
        pytest.skip("the embedded default (SQLite) has no connection budget")
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        server_max = int(cursor.fetchone()[0])
    settings.DB_MAX_CONNECTIONS = 10_000  # what the settings claim is not what counts here
    settings.DB_POOL_SIZE = server_max  # one process could fill the server alone
    warnings = check_connection_budget_on_the_server(None, databases=["default"])
    assert [w.id for w in warnings] == ["ops.W005"] and "max_connections" in warnings[0].msg
    # The settings-only check leaves it to the database one, so it is said once.
    assert check_connection_budget(None, databases=["default"]) == []


def killswitch_url(user: str, database: str | None = None) -> str:
    db = connection.settings_dict
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database or db['NAME']}"


def test_the_killswitch_role_is_checked_against_the_server(settings, db):
    """check --database default connects as KILLSWITCH_DATABASE_URL: a role that gets no
    reserved slot, or may not write the kill switch's tables, or another database, is
    named before the incident that needs it."""
    import uuid

    import psycopg

    from ops.checks import check_killswitch_role, killswitch_role_problem

    if connection.vendor != "postgresql":
        pytest.skip("the embedded default (SQLite) has no server to be full")
    superuser = connection.settings_dict["USER"] or "postgres"
    settings.KILLSWITCH_DATABASE_URL = killswitch_url(superuser)
    assert killswitch_role_problem() is None
    assert check_killswitch_role(None, databases=["default"]) == []

    settings.KILLSWITCH_DATABASE_URL = killswitch_url(superuser, "some_other_database")
    assert "must name the same one" in killswitch_role_problem()

    role = f"investiq_ks_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(
        killswitch_url(superuser).replace("postgres://", "postgresql://", 1), autocommit=True
    )
    try:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        settings.KILLSWITCH_DATABASE_URL = killswitch_url(role)
        assert "neither a superuser" in killswitch_role_problem()
        assert [w.id for w in check_killswitch_role(None, databases=["default"])] == ["ops.W007"]
    finally:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()
