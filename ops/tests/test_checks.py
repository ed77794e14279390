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
    ],
)
def test_the_partition_guard_is_held_against_gunicorns_worker_timeout(options, worker_timeout, warned):
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
