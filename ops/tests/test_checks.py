"""System checks called directly, with settings overridden per test."""

from __future__ import annotations

import pytest

from ops.checks import check_probe_timing
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
