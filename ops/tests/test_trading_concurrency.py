"""Races on real databases: concurrent transitions, trades racing a halt, restarts.

The transition, halt-race and reducing-sells tests run on whatever database the run
uses, so on the embedded default too (SQLite in WAL mode with IMMEDIATE transactions;
before that they failed there with "database is locked"); the shell-halt test always
runs on SQLite with real processes. The others need Postgres.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection, connections

from ops.api.models import ApiClient
from ops.monitoring.models import MetricCounter
from ops.records.models import Position, Trade
from ops.tests.conftest import database_url, make_user, trade_payload, wait_for_session
from ops.tests.processes import free_port, start_process, stop_process, wait_until_ready
from ops.trading import service
from ops.trading.errors import InvalidTransition
from ops.trading.models import State, TradingEvent, TradingState

ROOT = Path(__file__).resolve().parents[2]


# Each test's threads hold a connection each at once (ops/tests/conftest.py).
pytestmark = pytest.mark.usefixtures("wide_pool")


def in_thread(fn):
    """Run fn on its own DB connection and close it after (threads get their own)."""

    def run(*args):
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return run


@pytest.fixture
def one_person(settings):
    settings.TRADING_TWO_PERSON_RESUME = False


def test_twenty_threads_halting_and_resuming_lose_no_update(transactional_db, one_person):
    actor = service.Actor.of(make_user("sup", "ops_supervisor"))
    scope = "strategy:momentum"
    barrier = threading.Barrier(20)

    @in_thread
    def worker(index: int) -> int:
        barrier.wait()
        changed = 0
        for round_ in range(5):
            try:
                if (index + round_) % 2:
                    to_state = State.HALTED if index % 3 else State.REDUCING
                    result = service.halt(scope, reason=f"t{index}", actor=actor, to_state=to_state)
                else:
                    result = service.resume(scope, reason=f"t{index}", actor=actor)
            except InvalidTransition:
                continue  # HALTED -> REDUCING via halt(): refused, by design
            changed += result.changed
        return changed

    with ThreadPoolExecutor(max_workers=20) as pool:
        changes = sum(pool.map(worker, range(20)))

    events = list(TradingEvent.objects.filter(scope=scope).order_by("id"))
    assert len(events) == changes > 10
    assert events[0].from_state == State.ACTIVE
    for previous, current in itertools.pairwise(events):
        assert current.from_state == previous.to_state, (previous, current)
        assert current.from_state != current.to_state
    assert TradingState.objects.get(scope=scope).state == events[-1].to_state


def test_no_trade_that_started_after_the_halt_returned_is_accepted(live_server):
    # Whatever database this run uses: Postgres, or the SQLite file of the newcomer path.
    _, token = ApiClient.issue("engine")
    halt_returned_at: list[float] = []
    results: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            response = session.post(
                f"{live_server.url}/api/v1/trades",
                timeout=10,
                json=trade_payload(client_order_id=f"c{index}-{n}", quantity="1"),
            )
            with lock:
                results.append((started, response.status_code))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)  # trades flowing
        service.halt("global", reason="race test", actor=service.Actor.system("test", service.HALT))
        halt_returned_at.append(time.monotonic())
        time.sleep(1.0)  # trades still trying
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)

    cutoff = halt_returned_at[0]
    before = [status for started, status in results if started < cutoff]
    after = [status for started, status in results if started > cutoff]
    assert before.count(201) > 5, "the test needs trades accepted before the halt"
    assert len(after) > 5, "the test needs requests after the halt"
    assert set(after) == {423}, f"accepted after the halt returned: {after.count(201)}"
    # SQLite before WAL + IMMEDIATE answered some of these 503 ("database is locked").
    assert set(before) <= {201, 423}, f"answers while trades raced the halt: {sorted(set(before))}"
    # And the books agree: every recorded trade is one of the 201s, all from before the halt.
    assert Trade.objects.count() == before.count(201)
    # Six writers at once: the sharded trigger counter lost none of them.
    assert MetricCounter.objects.totals("trades") == {"buy": Trade.objects.count()}


def embedded_default_env(var: Path) -> dict[str, str]:
    """`make run`'s settings in a folder of its own: SQLite file, file-system broker, DEBUG."""
    return {
        "DEBUG": "true",
        "INVESTIQ_VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'investiq.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "filesystem://",
        "LOG_LEVEL": "WARNING",
    }


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_shell_halt_under_eight_api_clients_succeeds_first_try_on_the_embedded_default(tmp_path):
    """Real processes on SQLite: gunicorn (make run's three sync workers) answering eight
    client threads while an operator types `manage.py trading halt`. On deferred
    transactions without WAL the halt failed with "database is locked" and trades got 503."""
    env = embedded_default_env(tmp_path / "var")
    for command in (("migrate", "-v0"), ("ops_user", "alice", "--role", "operator", "--create")):
        done = manage(env, *command)
        assert done.returncode == 0, done.stderr
    token = manage(env, "create_api_token", "engine").stdout.strip()
    port = free_port()
    server = start_process(
        ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py", "--access-logfile", "/dev/null"],
        {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "3",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),  # gunicorn creates it
        },
        tmp_path / "gunicorn.log",
    )
    results: list[tuple[float, int | str]] = []  # (started, status or exception name)
    lock = threading.Lock()
    stop = threading.Event()

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        for n in itertools.count():
            if stop.is_set():
                return
            started = time.monotonic()
            try:
                status = session.post(
                    f"http://127.0.0.1:{port}/api/v1/trades",
                    timeout=60,
                    json=trade_payload(client_order_id=f"c{index}-{n}", quantity="1"),
                ).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            with lock:
                results.append((started, status))

    def count(predicate) -> int:
        with lock:
            return sum(1 for item in results if predicate(item))

    def wait_for(predicate, at_least: int) -> None:
        # Waits for a number of answers, not for a time; the deadline only stops a hang.
        deadline = time.monotonic() + 120
        while count(predicate) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", server)
        for thread in threads:
            thread.start()
        wait_for(lambda item: item[1] == 201, 40)  # trades flowing
        halt = manage(env, "trading", "halt", "--scope", "global", "--reason", "race", "--actor", "alice")
        cutoff = time.monotonic()
        wait_for(lambda item: item[0] > cutoff, 40)  # and still trying after it returned
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
        stop_process(server)

    assert halt.returncode == 0, halt.stderr
    assert "global: ACTIVE -> HALTED" in halt.stdout
    statuses = [status for _, status in results]
    after = [status for started, status in results if started > cutoff]
    assert statuses.count(201) >= 40, "the test needs trades accepted before the halt"
    assert len(after) >= 40, "the test needs requests after the halt"
    assert set(statuses) <= {201, 423}, {status: statuses.count(status) for status in set(statuses)}
    assert set(after) == {423}, f"accepted after the halt returned: {after.count(201)}"
    with contextlib.closing(sqlite3.connect(tmp_path / "var" / "investiq.sqlite3")) as books:
        recorded = books.execute("SELECT count(*) FROM ops_trade").fetchone()[0]
        events = books.execute("SELECT from_state, to_state FROM ops_tradingevent").fetchall()
    assert recorded == statuses.count(201)
    assert events == [("ACTIVE", "HALTED")]


def test_concurrent_reducing_sells_never_flip_the_position(transactional_db):
    from ops.records.intake import TradeOrder
    from ops.trading.gate import TradeDenied, submit_trade

    submit_trade(TradeOrder("seed", "AAPL", "buy", 10, 100, "momentum"))
    service.halt(
        "symbol:AAPL", reason="x", actor=service.Actor.system("t", service.HALT), to_state=State.REDUCING
    )
    barrier = threading.Barrier(8)

    @in_thread
    def sell(index: int) -> bool:
        barrier.wait()
        try:
            submit_trade(TradeOrder(f"s{index}", "AAPL", "sell", 3, 100, "momentum"))
        except TradeDenied:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = sum(pool.map(sell, range(8)))
    assert accepted == 3  # 10 -> 7 -> 4 -> 1; a fourth would go short
    from ops.records.models import Position

    assert Position.objects.get(symbol="AAPL", strategy="momentum").quantity == 1


def test_a_halt_survives_the_process_that_wrote_it(transactional_db, postgres):
    make_user("sup", "ops_supervisor")
    env = {**os.environ, "DATABASE_URL": database_url(), "SECRET_KEY": "restart-test"}
    writer = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "trading",
            "halt",
            "--scope",
            "global",
            "--reason",
            "sticky?",
            "--actor",
            "sup",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert writer.returncode == 0, writer.stderr
    # A fresh connection, not Django's: what a restarted process would read.
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    ) as fresh:
        state, reason = fresh.execute(
            "SELECT state, reason FROM ops_tradingstate WHERE scope = 'global'"
        ).fetchone()
    assert (state, reason) == ("HALTED", "sticky?")
    reader = subprocess.run(
        [sys.executable, "manage.py", "trading", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "HALTED" in reader.stdout and "sticky?" in reader.stdout


def long_momentum_aapl_reducing(quantity: int) -> None:
    from decimal import Decimal

    from ops.records.intake import TradeOrder
    from ops.trading.gate import submit_trade

    submit_trade(TradeOrder("seed", "AAPL", "buy", Decimal(quantity), Decimal(1), "momentum"))
    service.halt(
        "strategy:momentum",
        reason="x",
        actor=service.Actor.system("t", service.HALT),
        to_state=State.REDUCING,
    )


@contextlib.contextmanager
def slow_trade_inserts(seconds: float, when: str):
    """Trade inserts matching `when` (SQL over NEW) sleep before the row goes in, holding
    their position lock: a trigger, since on Postgres the gate is one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_slow_insert() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_sleep({float(seconds)}); RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER test_slow_insert BEFORE INSERT ON ops_trade FOR EACH ROW "
            f"WHEN ({when}) EXECUTE FUNCTION test_slow_insert()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_slow_insert ON ops_trade")
            cursor.execute("DROP FUNCTION test_slow_insert()")


@contextlib.contextmanager
def every_trade_on_one_counter_shard():
    """Trade ids step by the shard count, so every insert's trigger bumps the same counter
    row of its side: two racing sells always meet on one row, whoever gets its id first."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE ops_trade ALTER COLUMN id SET INCREMENT BY {MetricCounter.SHARDS}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE ops_trade ALTER COLUMN id SET INCREMENT BY 1")


def test_a_reducing_gate_trade_and_a_booked_fill_on_one_position_do_not_deadlock(transactional_db, postgres):
    """The gate (one SQL function) and book_fill (the ORM, past the gate) take the
    position lock before the counter lock, in that order. Raced here: the gate's sell
    holds the position in a slowed insert, book_fill queues on that position, and both
    sells count on one counter row. A fill that counted before it locked the position
    would hold that row while waiting for the gate, which waits for the row: deadlock."""
    from decimal import Decimal

    from ops.records.intake import TradeOrder
    from ops.trading import gate
    from ops.trading.models import FillBooking

    supervisor = service.Actor.of(make_user("sue", "ops_supervisor"))
    long_momentum_aapl_reducing(100)
    outcomes: dict[str, str] = {}

    @in_thread
    def gate_sell() -> None:
        try:
            gate.submit_trade(TradeOrder("gate-sell", "AAPL", "sell", Decimal(1), Decimal(1), "momentum"))
            outcomes["gate"] = "ok"
        except Exception as exc:
            outcomes["gate"] = repr(exc)

    @in_thread
    def fill() -> None:
        try:
            gate.book_fill(
                TradeOrder("fill-sell", "AAPL", "sell", Decimal(1), Decimal(1), "momentum"),
                actor=supervisor,
                reason="filled at the broker before the halt",
            )
            outcomes["fill"] = "ok"
        except Exception as exc:
            outcomes["fill"] = repr(exc)

    first = threading.Thread(target=gate_sell)
    second = threading.Thread(target=fill)
    # The gate's sell holds the position lock, asleep before its row goes in, while the
    # fill arrives: ordered by what pg_stat_activity shows, not by sleeps.
    with every_trade_on_one_counter_shard(), slow_trade_inserts(1.0, "NEW.client_order_id = 'gate-sell'"):
        first.start()
        wait_for_session("ops_submit_trade(", "Timeout")  # the gate's sell, in its slowed insert
        second.start()
        wait_for_session('FROM "ops_position" WHERE%FOR UPDATE', "Lock")  # book_fill, queued on it
        first.join(timeout=30)
        second.join(timeout=30)
    assert outcomes == {"gate": "ok", "fill": "ok"}
    sells = list(Trade.objects.filter(symbol="AAPL", side="sell").order_by("id"))
    assert [trade.client_order_id for trade in sells] == ["gate-sell", "fill-sell"]
    assert sells[0].id % MetricCounter.SHARDS == sells[1].id % MetricCounter.SHARDS
    booking = FillBooking.objects.get()
    assert (booking.trade_id, booking.state_at_booking) == (sells[1].id, State.REDUCING)
    assert MetricCounter.objects.totals("trades")["sell"] == 2
    assert Position.objects.get(strategy="momentum", symbol="AAPL").quantity == 98


def test_an_identical_retry_racing_the_original_under_reducing_gets_the_original(transactional_db, postgres):
    from decimal import Decimal

    from ops.records.intake import TradeOrder
    from ops.trading import gate

    long_momentum_aapl_reducing(10)
    same = TradeOrder("close-all", "AAPL", "sell", Decimal(10), Decimal(1), "momentum")
    results: dict[str, object] = {}

    @in_thread
    def submit(name: str) -> None:
        try:
            results[name] = gate.submit_trade(same)[1]
        except Exception as exc:
            results[name] = repr(exc)

    threads = [threading.Thread(target=submit, args=(name,)) for name in ("original", "retry")]
    # The original holds the position lock, its trade inserted but not committed.
    with slow_trade_inserts(0.5, "NEW.client_order_id = 'close-all'"):
        threads[0].start()
        wait_for_session("ops_submit_trade(", "Timeout")  # the original, in its slowed insert
        threads[1].start()
        for thread in threads:
            thread.join(timeout=30)
    assert results == {"original": True, "retry": False}  # created, then "already recorded"
    assert Trade.objects.filter(client_order_id="close-all").count() == 1


def test_seed_demo_and_concurrent_fills_do_not_deadlock(transactional_db, postgres, monkeypatch):
    from decimal import Decimal

    from ops import demo
    from ops.records.intake import TradeOrder
    from ops.trading.gate import submit_trade

    slow_record = demo.submit_trade

    def slowed(*args, **kwargs):
        time.sleep(0.005)  # keep the seed's transaction open while fills arrive
        return slow_record(*args, **kwargs)

    monkeypatch.setattr(demo, "submit_trade", slowed)
    outcomes: dict[str, str] = {}

    @in_thread
    def seed() -> None:
        try:
            demo.seed()
            outcomes["seed"] = "ok"
        except Exception as exc:
            outcomes["seed"] = repr(exc)

    @in_thread
    def fill(index: int) -> None:
        strategy, symbol = [
            ("momentum", "AAPL"),
            ("pairs", "NVDA"),
            ("default", "SPY"),
            ("momentum", "BRK.B"),
        ][index]
        try:
            for n in range(4):
                submit_trade(
                    TradeOrder(
                        f"fill-{index}-{n}", symbol, ("buy", "sell")[n % 2], Decimal(1), Decimal(1), strategy
                    )
                )
            outcomes[f"fill-{index}"] = "ok"
        except Exception as exc:
            outcomes[f"fill-{index}"] = repr(exc)

    threads = [threading.Thread(target=seed)] + [threading.Thread(target=fill, args=(i,)) for i in range(4)]
    threads[0].start()
    time.sleep(0.3)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(outcomes.values()) == {"ok"}, outcomes
    assert MetricCounter.objects.totals("trades") == {
        side: Trade.objects.filter(side=side).count() for side in ("buy", "sell")
    }
