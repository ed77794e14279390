"""The runner, recording, staleness, automatic trips, Redis down, the command."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from ops.health import service
from ops.health.exceptions import DependencyUnavailable
from ops.health.models import DependencyCheck, DependencyStatus, Health, ProbeCycle
from ops.health.probes import Database, Redis
from ops.health.runner import ProbeResult, cycle_deadline, run_probes
from ops.tests.test_metrics import scrape, value
from ops.trading.models import State, TradingEvent, TradingState


@dataclass(frozen=True)
class Hangs:
    release: threading.Event
    name: str = "hangs"

    def run(self) -> str:
        self.release.wait(30)
        return "late"


@dataclass(frozen=True)
class Explodes:
    name: str = "explodes"

    def run(self) -> str:
        raise KeyError("surprise")


@dataclass(frozen=True)
class Sleeps:
    seconds: float
    name: str = "sleeps"

    def run(self) -> str:
        time.sleep(self.seconds)
        return "done"


@pytest.fixture
def short_timeouts(settings):
    settings.PROBE_CONNECT_TIMEOUT = 0.3
    settings.PROBE_READ_TIMEOUT = 0.5


def test_one_hanging_probe_is_cut_at_the_read_timeout_and_the_others_are_kept(
    transactional_db, short_timeouts
):
    release = threading.Event()
    try:
        results = {r.name: r for r in run_probes((Hangs(release), Database(), Sleeps(0.2)))}
    finally:
        release.set()
    # Had the runner waited for it, the hung probe would have answered "late" (UP).
    assert (results["hangs"].status, results["hangs"].detail) == (Health.DOWN, "no answer within 0.5s")
    assert results["hangs"].latency_ms == pytest.approx(cycle_deadline() * 1000)
    assert results["database"].status == Health.UP
    assert results["sleeps"].status == Health.UP and results["sleeps"].latency_ms >= 200


def test_the_cycle_waits_one_read_timeout_and_a_margin_never_connect_plus_read(settings):
    settings.PROBE_CONNECT_TIMEOUT, settings.PROBE_READ_TIMEOUT = 2.0, 5.0
    assert cycle_deadline() == pytest.approx(5.25)
    settings.PROBE_CONNECT_TIMEOUT = 30.0  # a long connect timeout buys no extra wait
    assert cycle_deadline() == pytest.approx(5.25)


@dataclass(frozen=True)
class MeetsTheOthers:
    barrier: threading.Barrier
    name: str

    def run(self) -> str:
        self.barrier.wait()  # returns only once every probe of the barrier is running
        return "met"


def test_probes_run_concurrently(settings):
    settings.PROBE_READ_TIMEOUT = 10.0  # the runner cuts them only if they cannot all meet
    barrier = threading.Barrier(5)
    try:
        results = run_probes(tuple(MeetsTheOthers(barrier, f"p{n}") for n in range(5)))
    finally:
        barrier.abort()  # frees any that were cut (only when the test fails)
    assert [r.status for r in results] == [Health.UP] * 5


def test_an_unexpected_exception_is_down_with_its_type(caplog):
    (result,) = run_probes((Explodes(),))
    assert result.status == Health.DOWN and result.detail == "KeyError: 'surprise'"
    assert "probe explodes raised" in caplog.text and "Traceback" in caplog.text


def test_an_unreachable_database_is_down_in_words_without_a_traceback(database_down, caplog):
    from django.db import connection

    (r,) = run_probes((Database(),))
    assert r.status == Health.DOWN and r.detail.startswith(f"{connection.vendor}: ")
    assert "OperationalError" not in r.detail
    assert "Traceback" not in caplog.text  # an outage, not a bug: no stack trace every cycle


def result(name: str, status: str, detail: str = "", at=None) -> ProbeResult:
    return ProbeResult(name, status, 12.5, detail, at or timezone.now())


def test_with_the_database_gone_recording_stops_at_the_first_failed_write(database_down, caplog, monkeypatch):
    from django.db import connection

    attempts = []
    real_connect = connection.get_new_connection
    monkeypatch.setattr(
        connection, "get_new_connection", lambda params: attempts.append(1) or real_connect(params)
    )
    service.record([result(name, Health.DOWN) for name in ("alpaca", "database", "redis")])
    assert len(attempts) == 1  # not one connect attempt (connect_timeout) per result
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "database unreachable: probe results not recorded: alpaca, database, redis"
    ]
    assert "Traceback" not in caplog.text


def test_recording_keeps_a_current_row_and_history(db):
    service.record([result("database", Health.UP, "ok")])
    service.record([result("database", Health.DOWN, "boom")])
    service.record([result("database", Health.DOWN, "boom")])
    row = DependencyStatus.objects.get(name="database")
    assert (row.status, row.detail, row.consecutive_failures) == (Health.DOWN, "boom", 2)
    assert DependencyCheck.objects.filter(name="database").count() == 3
    service.record([result("database", Health.UP, "ok")])
    assert DependencyStatus.objects.get(name="database").consecutive_failures == 0


def test_status_since_moves_only_when_the_status_changes(db):
    start = timezone.now() - timedelta(minutes=5)
    at = [start + timedelta(seconds=15 * n) for n in range(4)]
    service.record([result("polygon", Health.UP, "ok", at[0])])
    service.record([result("polygon", Health.DOWN, "timeout", at[1])])
    service.record([result("polygon", Health.DOWN, "timeout", at[2])])
    assert DependencyStatus.objects.get(name="polygon").status_since == at[1]  # down since the first failure
    service.record([result("polygon", Health.UP, "ok", at[3])])
    assert DependencyStatus.objects.get(name="polygon").status_since == at[3]


def test_the_status_feeds_the_metrics(db):
    service.record(
        [
            result("database", Health.UP),
            result("ml_service", Health.DOWN, "x"),
            result("polygon", Health.NOT_CONFIGURED),
        ]
    )
    text = scrape()
    assert value(text, "investiq_dependency_health", name="database") == 1
    assert value(text, "investiq_dependency_health", name="ml_service") == 0
    assert 'investiq_dependency_health{name="polygon"}' not in text  # not configured: no sample
    assert value(text, "investiq_dependency_check_duration_seconds", name="database") == pytest.approx(0.0125)
    stamp = value(text, "investiq_dependency_last_check_timestamp_seconds", name="database")
    assert abs(stamp - time.time()) < 60


def test_a_status_older_than_three_intervals_is_unknown_everywhere(db, settings, staff_user, capsys):
    settings.PROBE_INTERVAL_SECONDS = 15
    old = timezone.now() - timedelta(seconds=46)
    service.record([result("database", Health.UP, at=old), result("redis", Health.UP)])
    row = DependencyStatus.objects.get(name="database")
    assert row.effective_status() == Health.UNKNOWN
    assert DependencyStatus.objects.get(name="redis").effective_status() == Health.UP
    # metrics: no green sample for the stale one
    text = scrape()
    assert 'investiq_dependency_health{name="database"}' not in text
    assert value(text, "investiq_dependency_health", name="redis") == 1
    # admin
    client = Client()
    client.force_login(staff_user)
    page = client.get("/admin/ops/dependencystatus/").content.decode()
    assert "UNKNOWN" in page
    # and with time moved forward, the fresh one goes stale too
    assert (
        DependencyStatus.objects.get(name="redis").effective_status(timezone.now() + timedelta(seconds=46))
        == Health.UNKNOWN
    )


def test_the_recorded_view_of_the_command_shows_stale_as_unknown(db, settings, capsys):
    settings.PROBE_INTERVAL_SECONDS = 15
    service.record(
        [
            result("database", Health.UP, "ok", at=timezone.now() - timedelta(minutes=5)),
            result("redis", Health.UP, "PONG"),
        ]
    )
    with pytest.raises(CommandError, match="down or unknown: database"):
        call_command("check_dependencies", "--recorded")
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "UNKNOWN" in lines["database"] and re.search(r"checked 30\ds ago", lines["database"])
    assert "UP" in lines["redis"]


def test_fresh_statuses_are_not_unknown(db, settings):
    settings.PROBE_INTERVAL_SECONDS = 15
    service.record([result("database", Health.UP, at=timezone.now() - timedelta(seconds=44))])
    assert DependencyStatus.objects.get().effective_status() == Health.UP


# --- automatic trips -------------------------------------------------------------------


def global_state() -> str:
    return TradingState.objects.get(scope="global").state


def test_n_failing_alpaca_checks_halt_trading_once(db, settings):
    settings.AUTO_TRIP_AFTER_FAILURES = 3
    for _ in range(2):
        service.record([result("alpaca", Health.DOWN, "connection failed: Connection refused")])
    assert global_state() == State.ACTIVE  # not yet
    for _ in range(4):
        service.record([result("alpaca", Health.DOWN, "connection failed: Connection refused")])
    event = TradingEvent.objects.get()
    assert (event.to_state, event.source, event.actor) == (
        State.HALTED,
        "rule:broker_unreachable",
        "system:probes",
    )
    assert "alpaca failed 3 consecutive checks" in event.reason
    service.record([result("alpaca", Health.UP, "market open")])  # recovery
    assert global_state() == State.HALTED  # never resumed automatically
    assert TradingEvent.objects.count() == 1


def test_a_trip_does_not_fight_a_person_who_resumed(db, settings, supervisor):
    from ops.trading import service as kill_switch

    settings.AUTO_TRIP_AFTER_FAILURES = 2
    settings.TRADING_TWO_PERSON_RESUME = False
    for _ in range(2):
        service.record([result("alpaca", Health.DOWN)])
    kill_switch.resume("global", reason="trading manually via phone", actor=kill_switch.Actor.of(supervisor))
    for _ in range(3):
        service.record([result("alpaca", Health.DOWN)])
    assert global_state() == State.ACTIVE


def test_polygon_failures_set_reducing(db, settings):
    settings.AUTO_TRIP_AFTER_FAILURES = 2
    for _ in range(2):
        service.record([result("polygon", Health.DOWN, "HTTP 500")])
    event = TradingEvent.objects.get()
    assert (event.to_state, event.source) == (State.REDUCING, "rule:market_data_unavailable")


def test_polygon_does_not_loosen_an_existing_halt(db, settings):
    settings.AUTO_TRIP_AFTER_FAILURES = 1
    service.record([result("alpaca", Health.DOWN)])
    service.record([result("polygon", Health.DOWN)])
    assert global_state() == State.HALTED and TradingEvent.objects.count() == 1


def test_the_ml_service_never_trips_trading(db, settings):
    settings.AUTO_TRIP_AFTER_FAILURES = 1
    for _ in range(5):
        service.record([result("ml_service", Health.DOWN)])
    assert global_state() == State.ACTIVE and not TradingEvent.objects.exists()


def test_not_configured_never_trips(db, settings):
    settings.AUTO_TRIP_AFTER_FAILURES = 1
    service.record([result("alpaca", Health.NOT_CONFIGURED)])
    assert not TradingEvent.objects.exists()


def test_trips_can_be_switched_off(db, settings):
    settings.AUTO_TRIPS_ENABLED = False
    settings.AUTO_TRIP_AFTER_FAILURES = 1
    service.record([result("alpaca", Health.DOWN)])
    assert not TradingEvent.objects.exists()


# --- Redis down, the periodic guard, history, the command --------------------------------


def test_with_redis_down_the_database_probe_and_the_web_keep_working(db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.PROBE_CONNECT_TIMEOUT = 0.5
    results = {r.name: r for r in run_probes((Database(), Redis()))}
    assert results["database"].status == Health.UP
    assert results["redis"].status == Health.DOWN
    assert "connection failed" in results["redis"].detail and "refused" in results["redis"].detail.lower()
    assert Client().get("/healthz").status_code == 200
    assert Client().get("/metrics").status_code == 200


def test_a_second_beat_in_the_same_interval_is_skipped(db, settings, monkeypatch):
    calls = []
    monkeypatch.setattr(service, "check_now", lambda: calls.append(1) or [])
    assert service.periodic_cycle() == []
    assert service.periodic_cycle() is None  # a duplicate beat's task, moments later
    ProbeCycle.objects.update(started_at=timezone.now() - timedelta(seconds=settings.PROBE_INTERVAL_SECONDS))
    assert service.periodic_cycle() == []
    assert len(calls) == 2


def test_history_older_than_the_setting_is_pruned(db, settings):
    settings.DEPENDENCY_HISTORY_DAYS = 7
    service.record(
        [result("database", Health.UP, at=timezone.now() - timedelta(days=8)), result("redis", Health.UP)]
    )
    assert service.prune_history() == 1
    assert list(DependencyCheck.objects.values_list("name", flat=True)) == ["redis"]


def test_check_dependencies_prints_a_table_and_fails_when_one_is_down(db, settings, capsys):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.ML_SERVICE_URL = ""
    settings.PROBE_CONNECT_TIMEOUT = 0.5
    with pytest.raises(CommandError, match="down or unknown: redis"):
        call_command("check_dependencies")
    out = capsys.readouterr().out
    assert "database" in out and "UP" in out and "NOT_CONFIGURED" in out and "DOWN" in out
    assert DependencyStatus.objects.get(name="redis").status == Health.DOWN  # recorded like the task


def test_check_dependencies_exits_zero_when_all_configured_are_up(db, settings, capsys):
    settings.REDIS_URL = ""
    call_command("check_dependencies")
    assert "database" in capsys.readouterr().out


def test_a_probe_can_raise_dependency_unavailable():
    @dataclass(frozen=True)
    class Down:
        name: str = "down"

        def run(self) -> str:
            raise DependencyUnavailable("disk full")

    (r,) = run_probes((Down(),))
    assert (r.status, r.detail) == (Health.DOWN, "disk full")


def test_a_trip_that_failed_is_retried_on_the_next_cycle(db, settings, monkeypatch):
    from django.db import DatabaseError

    from ops.trading import service as kill_switch

    settings.AUTO_TRIP_AFTER_FAILURES = 2
    real_halt = kill_switch.halt
    calls = []

    def flaky_halt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise DatabaseError("connection lost mid-trip")
        return real_halt(*args, **kwargs)

    monkeypatch.setattr(kill_switch, "halt", flaky_halt)
    service.record([result("alpaca", Health.DOWN), result("database", Health.UP)])
    service.record([result("alpaca", Health.DOWN), result("database", Health.UP)])  # threshold: trip fails
    assert global_state() == State.ACTIVE
    assert not DependencyStatus.objects.get(name="alpaca").tripped
    assert DependencyCheck.objects.filter(name="database").count() == 2  # the others were still recorded
    service.record([result("alpaca", Health.DOWN)])  # next cycle: applied
    assert global_state() == State.HALTED
    assert DependencyStatus.objects.get(name="alpaca").tripped
    assert TradingEvent.objects.get().source == "rule:broker_unreachable"


def test_a_threshold_lowered_mid_outage_still_trips_once(db, settings):
    settings.AUTO_TRIP_AFTER_FAILURES = 5
    for _ in range(4):
        service.record([result("alpaca", Health.DOWN)])
    settings.AUTO_TRIP_AFTER_FAILURES = 3
    for _ in range(5):
        service.record([result("alpaca", Health.DOWN)])
    assert global_state() == State.HALTED and TradingEvent.objects.count() == 1


def test_trips_enabled_mid_outage_apply_at_the_next_check(db, settings):
    settings.AUTO_TRIP_AFTER_FAILURES = 3
    settings.AUTO_TRIPS_ENABLED = False
    for _ in range(3):
        service.record([result("alpaca", Health.DOWN)])
    settings.AUTO_TRIPS_ENABLED = True
    service.record([result("alpaca", Health.DOWN)])
    assert global_state() == State.HALTED


def test_a_crash_after_the_halt_cannot_make_the_probes_overrule_a_resume(
    db, settings, supervisor, monkeypatch
):
    """The halt and the `tripped` mark commit together, or neither does."""
    from django.db import OperationalError

    from ops.trading import service as kill_switch

    settings.AUTO_TRIP_AFTER_FAILURES = 1
    settings.TRADING_TWO_PERSON_RESUME = False
    real_update = DependencyStatus.objects.filter
    failed = []

    def flaky_filter(*args, **kwargs):
        queryset = real_update(*args, **kwargs)
        if not failed and kwargs.get("pk") and TradingEvent.objects.exists():
            failed.append(1)

            class Broken:
                def update(self, **fields):
                    raise OperationalError("server closed the connection")

            return Broken()
        return queryset

    monkeypatch.setattr(DependencyStatus.objects, "filter", flaky_filter)
    service.record([result("alpaca", Health.DOWN)])  # the mark fails: the halt rolls back with it
    assert failed and global_state() == State.ACTIVE
    service.record([result("alpaca", Health.DOWN)])  # tripped now, for real, once
    assert global_state() == State.HALTED
    kill_switch.resume("global", reason="trading by phone", actor=kill_switch.Actor.of(supervisor))
    for _ in range(3):
        service.record([result("alpaca", Health.DOWN)])
    assert global_state() == State.ACTIVE
    assert [e.to_state for e in TradingEvent.objects.order_by("id")] == [State.HALTED, State.ACTIVE]
