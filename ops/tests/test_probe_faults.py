"""Dependency probes under faults, with the real things: a dependency that accepts and
never answers, a beat that stops, a worker SIGKILLed in the middle of a probe.

Celery worker and beat run as real processes on the test's Redis (REDIS_URL) and the
test's Postgres; Polygon, Alpaca and the ML service are local HTTP servers, and a hung
dependency is a TCP server that accepts connections and never sends a byte. Every wait
has a generous deadline as a hang guard only; what is asserted is what was recorded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ops.health import service
from ops.health.models import DependencyCheck, DependencyStatus, Health, stale_after
from ops.tests.conftest import celery_worker, database_url, start_process, stop_process
from ops.tests.dependency_servers import HealthyApis, SilentServer
from ops.tests.test_metrics import samples, scrape, value
from ops.trading.models import State, TradingEvent, TradingState

DEPENDENCIES = ("alpaca", "database", "ml_service", "polygon", "redis")
HUNG = re.compile(r"no answer( to PING)? within 0\.5s")  # the probe's own words, or the runner's


@pytest.fixture
def apis() -> Iterator[HealthyApis]:
    with HealthyApis() as servers:
        yield servers


def healthy_settings(apis: HealthyApis, redis_url: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "POLYGON_BASE_URL": apis.url,
        "POLYGON_API_KEY": "poly-key",
        "ALPACA_BASE_URL": apis.url,
        "ALPACA_KEY_ID": "key-id",
        "ALPACA_SECRET_KEY": "secret",
        "ML_SERVICE_URL": apis.url,
        "PROBE_CONNECT_TIMEOUT": "0.5",
        "PROBE_READ_TIMEOUT": "0.5",
    }


def statuses() -> dict[str, str]:
    return dict(DependencyStatus.objects.values_list("name", "status"))


def wait_for(condition: Callable[[], object], within: float, what: str, logs: Callable[[], str]) -> None:
    """Poll until `condition` holds; the deadline only guards against a hang."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {within:g}s\n{logs()}")


class Celery:
    """Worker(s) and a beat for one test, on a queue of their own."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.queue = f"probes-{uuid.uuid4().hex[:8]}"
        self.env = {
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": env["REDIS_URL"],
            "SECRET_KEY": "probe-faults",
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            **env,
        }
        self.processes: list = []
        self.logs: list[Path] = []

    def start(self, role: str, args: list[str], env: dict[str, str] | None = None):
        log = self.tmp_path / f"{role}-{len(self.logs)}.log"
        process = start_process(args, {**self.env, **(env or {})}, log)
        self.processes.append(process)
        self.logs.append(log)
        return process

    def worker(self, pool: str = "solo", **env: str):
        args = celery_worker(self.queue)
        if pool != "solo":
            args = [arg if arg != "--pool=solo" else f"--pool={pool}" for arg in args] + ["--concurrency=1"]
        return self.start("worker", args, env)

    def beat(self):
        schedule = self.tmp_path / f"beat-schedule-{len(self.logs)}"
        return self.start(
            "beat", ["celery", "-A", "investiq", "beat", "--loglevel=INFO", f"--schedule={schedule}"]
        )

    def log_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs if log.exists())

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)


@contextlib.contextmanager
def celery(tmp_path: Path, env: dict[str, str]) -> Iterator[Celery]:
    running = Celery(tmp_path, env)
    try:
        yield running
    finally:
        running.stop_all()


# --- a dependency that accepts the connection and never answers -------------------------


@pytest.mark.parametrize("hanging", DEPENDENCIES)
def test_a_dependency_that_never_answers_is_down_and_the_others_are_recorded(
    request, transactional_db, settings, redis_url, apis, hanging
):
    if hanging == "database":
        request.getfixturevalue("postgres")  # a hung database is a silent TCP peer: Postgres only
    for key, setting in healthy_settings(apis, redis_url).items():
        setattr(settings, key, float(setting) if key.startswith("PROBE_") else setting)
    with SilentServer() as silent:
        target = {
            "redis": ("REDIS_URL", silent.url("redis")),
            "polygon": ("POLYGON_BASE_URL", silent.url()),
            "alpaca": ("ALPACA_BASE_URL", silent.url()),
            "ml_service": ("ML_SERVICE_URL", silent.url()),
        }
        if hanging in target:
            setattr(settings, *target[hanging])
            results = service.check_now()
        else:
            # Probe threads open their own connections from this shared settings dict;
            # this thread keeps its open one, so the results are still recorded. A closed
            # pool leaves the connections it lent out working; the next one connects anew.
            connection.ensure_connection()
            saved = connection.settings_dict["PORT"]
            connection.close_pool()
            connection.settings_dict["PORT"] = silent.port
            try:
                results = service.check_now()
            finally:
                connection.settings_dict["PORT"] = saved
                connection.close_pool()
        assert silent.accepted >= 1  # it did reach the hung peer, which never answered
    by_name = {r.name: r for r in results}
    assert HUNG.fullmatch(by_name[hanging].detail), by_name[hanging].detail
    expected = {name: Health.UP for name in DEPENDENCIES} | {hanging: Health.DOWN}
    assert {name: r.status for name, r in by_name.items()} == expected
    assert statuses() == expected  # recorded, the hung one included
    assert DependencyCheck.objects.count() == len(DEPENDENCIES)


def test_a_worker_cycle_with_a_hung_dependency_records_every_result(
    transactional_db, postgres, redis_url, apis, tmp_path
):
    with (
        SilentServer() as silent,
        celery(
            tmp_path,
            {
                **healthy_settings(apis, redis_url),
                "ML_SERVICE_URL": silent.url(),
                "PROBE_INTERVAL_SECONDS": "2",
            },
        ) as running,
    ):
        running.worker()
        running.beat()
        wait_for(lambda: len(statuses()) == 5, 60, "five statuses recorded", running.log_text)
        assert silent.accepted >= 1
    row = DependencyStatus.objects.get(name="ml_service")
    assert (row.status, HUNG.fullmatch(row.detail) is not None) == (Health.DOWN, True), row.detail
    assert statuses() == {name: Health.UP for name in DEPENDENCIES} | {"ml_service": Health.DOWN}


# --- beat stopped ------------------------------------------------------------------------

INTERVAL = 2


def test_when_beat_stops_every_status_goes_unknown_after_three_intervals_and_back_with_beat(
    transactional_db, postgres, redis_url, apis, tmp_path, settings, capsys
):
    settings.PROBE_INTERVAL_SECONDS = INTERVAL
    env = {**healthy_settings(apis, redis_url), "PROBE_INTERVAL_SECONDS": str(INTERVAL)}
    all_up = {name: Health.UP for name in DEPENDENCIES}

    def effective() -> dict[str, str]:
        return {row.name: row.effective_status() for row in DependencyStatus.objects.all()}

    with celery(tmp_path, env) as running:
        worker = running.worker()
        beat = running.beat()
        wait_for(lambda: effective() == all_up, 60, "all five UP", running.log_text)
        stop_process(beat)
        wait_for(
            lambda: effective() == {name: Health.UNKNOWN for name in DEPENDENCIES},
            3 * INTERVAL + 60,
            "all five UNKNOWN after beat stopped",
            running.log_text,
        )
        assert worker.poll() is None  # the worker still runs: it is the schedule that stopped
        rows = list(DependencyStatus.objects.all())
        for row in rows:
            # The stored status is still the last green; only its age makes it UNKNOWN,
            # and exactly past three intervals.
            assert row.status == Health.UP
            edge = row.checked_at + stale_after()
            assert row.effective_status(edge - timedelta(seconds=0.5)) == Health.UP
            assert row.effective_status(edge + timedelta(seconds=0.5)) == Health.UNKNOWN
        assert stale_after() == timedelta(seconds=3 * INTERVAL)
        text = scrape()
        assert samples(text, "investiq_dependency_health") == {}  # no stale green on /metrics
        with pytest.raises(CommandError, match="down or unknown: " + ", ".join(DEPENDENCIES)):
            call_command("check_dependencies", "--recorded")
        capsys.readouterr()
        running.beat()
        wait_for(lambda: effective() == all_up, 60, "all five UP again with a new beat", running.log_text)
    assert value(scrape(), "investiq_dependency_health", name="alpaca") == 1


# --- a worker SIGKILLed mid-probe ----------------------------------------------------------


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                # the fields after the command's closing parenthesis: state, ppid, ...
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_worker_killed_mid_probe_neither_loses_nor_repeats_the_alpaca_trip(
    transactional_db, postgres, redis_url, apis, tmp_path, pool
):
    """solo: the whole worker dies and a new one is started; prefork: the pool process
    dies, and its task comes back (acks_late + reject_on_worker_lost) to a fresh one."""
    killed: list[int] = []
    interval = 3  # prefork enforces the task's soft limit, interval - 2 s: room for a cycle
    env_extra = {"PROBE_INTERVAL_SECONDS": str(interval), "AUTO_TRIP_AFTER_FAILURES": "1"}

    def kill_the_prober() -> None:
        # Runs the moment the Alpaca probe has connected: it is certainly waiting for an
        # answer that never comes, and the cycle has recorded nothing (results are
        # recorded after every probe has ended). From now on Alpaca refuses: still down.
        if killed:
            return
        silent.refuse()
        victim = worker.pid if pool == "solo" else children_of(worker.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    with (
        SilentServer(on_accept=kill_the_prober) as silent,
        celery(
            tmp_path, {**healthy_settings(apis, redis_url), "ALPACA_BASE_URL": silent.url(), **env_extra}
        ) as running,
    ):
        worker = running.worker(pool)
        running.beat()
        wait_for(lambda: killed, 60, "the Alpaca probe reached the hung server", running.log_text)
        if pool == "solo":
            worker.wait(timeout=20)
            assert worker.returncode == -signal.SIGKILL
            assert not DependencyStatus.objects.exists()  # the killed cycle recorded nothing
            running.worker(pool)  # a new worker
        wait_for(
            lambda: DependencyCheck.objects.filter(name="alpaca").count() >= 3,
            90,
            "three Alpaca checks recorded after the kill",
            running.log_text,
        )
        if pool == "prefork":
            assert "exited with 'signal 9 (SIGKILL)'" in running.log_text()
    assert silent.accepted == 1  # only the killed probe ever reached the hung Alpaca
    checks = list(DependencyCheck.objects.filter(name="alpaca"))
    # Every recorded Alpaca check came after the kill (refused, never "no answer").
    assert all(c.status == Health.DOWN and not HUNG.search(c.detail) for c in checks), checks
    event = TradingEvent.objects.get()  # exactly one trip for the outage
    assert (event.scope, event.to_state, event.source, event.actor) == (
        "global",
        State.HALTED,
        "rule:broker_unreachable",
        "system:probes",
    )
    assert TradingState.objects.get(scope="global").state == State.HALTED
    alpaca = DependencyStatus.objects.get(name="alpaca")
    assert alpaca.tripped and alpaca.consecutive_failures == len(checks)  # each check counted once
    text = scrape()
    assert (
        value(
            text, "investiq_trading_state_changes_total", to_state="HALTED", source="rule:broker_unreachable"
        )
        == 1
    )


def test_a_worker_killed_between_a_failure_and_its_trip_leaves_neither_on_record(
    transactional_db, postgres, redis_url, apis, tmp_path
):
    """A failure at the threshold is on record only together with its trip.

    The trip must lock the trading state; the test holds that lock, so the worker stops
    exactly after counting Alpaca's failure and before the halt commits, and is killed
    there. Alpaca then comes back. Had the failure been committed on its own, the
    history would show the outage at the threshold and no trip, for good.
    """
    env = {
        **healthy_settings(apis, redis_url),
        "ALPACA_BASE_URL": "http://127.0.0.1:1",  # refused: down, fast
        "PROBE_INTERVAL_SECONDS": "2",
        "AUTO_TRIP_AFTER_FAILURES": "1",
    }

    def worker_waits_for_the_lock() -> bool:
        waiting = blocker.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'ops_tradingstate'::regclass"
        ).fetchone()
        return waiting[0] > 0

    with psycopg.connect(database_url()) as blocker, celery(tmp_path, env) as running:
        blocker.execute("LOCK TABLE ops_tradingstate IN EXCLUSIVE MODE")
        worker = running.worker()
        running.beat()
        wait_for(worker_waits_for_the_lock, 60, "the worker waiting to trip", running.log_text)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=20)
        blocker.rollback()  # the lock goes; the dead worker's transaction never commits
        running.worker(ALPACA_BASE_URL=apis.url)  # a new worker, and Alpaca is back
        wait_for(lambda: statuses().get("alpaca") == Health.UP, 60, "Alpaca recorded UP", running.log_text)
    assert not DependencyCheck.objects.filter(name="alpaca", status=Health.DOWN).exists()
    assert not TradingEvent.objects.exists()
    assert not TradingState.objects.exclude(state=State.ACTIVE).exists()
