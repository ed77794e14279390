"""The kill switch gets through when the trading engine saturates the database.

A private Postgres cluster (the shared one serves other runs) and gunicorn with threaded
workers, as `gunicorn --worker-class gthread` runs them. Saturation is made exact rather
than by load: the engine's orders wait on a position row this test holds locked, so they
keep every connection the engine may use, and more orders queue behind them. Then a
person halts, from the console and from a shell. A second cluster is filled to its
max_connections by another role, and the halts still get in.

No time is measured: every wait polls a condition under a deadline that only stops a hang.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import requests
from django.conf import settings

from conftest import require_service
from ops.tests.private_services import PrivatePostgres, PrivateRedis, ServiceUnavailable
from ops.tests.processes import ROOT
from ops.tests.test_faults import DATABASE, Stack, _console_post, serving, wait_for

APP_ROLE = "investiq"  # not a superuser, like a deployment's
POOL_SIZE = 3  # per gunicorn worker; DB_POOL_RESERVE 1: the engine may hold 2
THREADS = 8
POSITION = {"strategy": "saturation", "symbol": "AAPL"}


@contextlib.contextmanager
def private_stack(tmp_path: Path, max_connections: int = 40, **env: str) -> Iterator[tuple[Stack, dict]]:
    require_service(
        "postgresql" in settings.DATABASES["default"]["ENGINE"],
        "saturation tests run in the services pass (DATABASE_URL on Postgres)",
    )
    try:
        postgres = PrivatePostgres(max_connections=max_connections)
        redis = PrivateRedis(tmp_path)
    except ServiceUnavailable as exc:
        require_service(False, f"no private Postgres cluster or Redis: {exc}")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(postgres.remove)
        postgres.start()
        cleanup.callback(redis.stop)
        redis.start()
        fields, manage_env = cleanup.enter_context(
            serving(
                tmp_path,
                postgres,
                redis,
                "saturating-engine",
                role=APP_ROLE,
                workers=1,
                gunicorn_args=f"--worker-class gthread --threads {THREADS}",
                **{
                    "SECRET_KEY": "saturation-tests",
                    "TRADING_TWO_PERSON_RESUME": "false",
                    "DB_POOL_SIZE": str(POOL_SIZE),
                    "DB_POOL_RESERVE": "1",
                    "DB_POOL_TIMEOUT": "30",
                    # Orders wait on the held row lock for as long as the test holds it.
                    "DB_STATEMENT_TIMEOUT_MS": "120000",
                    **env,
                },
            )
        )
        yield Stack(**fields), manage_env


def app_connections(stack: Stack) -> list[tuple[str, str | None]]:
    """(application's role, wait event type) of each backend of the app's database."""
    return stack.sql(
        "SELECT usename, wait_event_type FROM pg_stat_activity WHERE datname = %s AND usename = %s",
        DATABASE,
        APP_ROLE,
    )


@contextlib.contextmanager
def engine_saturated(stack: Stack, orders: int, holding: int = POOL_SIZE - 1) -> Iterator[list]:
    """`orders` trades in flight on one position whose row this block holds locked: the
    first `holding` take every connection the engine may use and wait on the lock in the
    database, the rest queue for a connection. Yields their answers, filled in when the
    block ends and the lock is released."""
    assert stack.post_trade(stack.trade("first", **POSITION)).status_code == 201  # the row exists
    answers: list = []
    with psycopg.connect(stack.postgres.url(DATABASE), connect_timeout=10) as locker:
        locker.execute(
            "SELECT 1 FROM ops_position WHERE strategy = %(strategy)s AND symbol = %(symbol)s FOR UPDATE",
            POSITION,
        )

        def post(index: int) -> None:
            try:
                answers.append(stack.post_trade(stack.trade(f"queued-{index}", **POSITION)).status_code)
            except requests.RequestException as exc:
                answers.append(type(exc).__name__)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(orders)]
        for thread in threads:
            thread.start()
        wait_for(
            "the engine's orders waiting on the locked row",
            lambda: sum(kind == "Lock" for _, kind in app_connections(stack)) == holding,
        )
        try:
            yield answers
        finally:
            locker.rollback()
            for thread in threads:
                thread.join(timeout=120)


def shell(manage_env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=manage_env,
        capture_output=True,
        text=True,
        timeout=120,  # only against a hang
    )


def console_halt(stack: Stack, reason: str) -> requests.Response:
    return _console_post(
        stack,
        "/console/halt",
        {
            "halt-scope_0": "global",
            "halt-state": "HALTED",
            "halt-reason": reason,
            "halt-confirm": "HALT",
        },
    )


def state_of(stack: Stack, scope: str) -> str | None:
    rows = stack.sql("SELECT state FROM ops_tradingstate WHERE scope = %s", scope)
    return rows[0][0] if rows else None


def test_with_the_engine_holding_its_whole_share_a_halt_gets_through_from_the_console_and_a_shell(tmp_path):
    with private_stack(tmp_path) as (stack, manage_env):
        manage = shell(manage_env, "ops_user", "olga", "--role", "operator", "--create")
        assert manage.returncode == 0, manage.stderr
        with engine_saturated(stack, orders=THREADS - 2) as answers:
            # The engine holds every connection it may; its next orders wait for one.
            assert len(app_connections(stack)) <= POOL_SIZE

            halted = console_halt(stack, "saturation test: from the console")
            assert halted.status_code == 302, halted.text[:2000]
            assert state_of(stack, "global") == "HALTED"

            from_shell = shell(
                manage_env,
                *("trading", "halt", "--scope", "symbol:TSLA", "--actor", "olga", "--reason", "from a shell"),
            )
            assert from_shell.returncode == 0, from_shell.stderr
            assert state_of(stack, "symbol:TSLA") == "HALTED"
            # The server process never held more than its pool, whatever its threads.
            assert len(app_connections(stack)) <= POOL_SIZE
        # Released, the orders that waited are answered, refused by the halt: none is a
        # 5xx, none was lost.
        assert sorted(answers) == [423] * (THREADS - 2), answers


def test_without_a_reserve_the_console_halt_waits_behind_the_engine(tmp_path):
    """The reserve is what lets the halt through: with none, the console's request waits
    for a connection the engine holds, and gets the busy page after DB_POOL_TIMEOUT."""
    with (
        private_stack(tmp_path, DB_POOL_RESERVE="0", DB_POOL_TIMEOUT="3") as (stack, _),
        engine_saturated(stack, orders=POOL_SIZE, holding=POOL_SIZE) as answers,
    ):
        page = stack.console.get(f"{stack.url}/", timeout=120)
        assert page.status_code == 503 and "Database busy" in page.text
    assert answers == [201] * POOL_SIZE


def test_with_the_server_full_the_console_and_a_shell_with_the_kill_switch_role_still_halt(tmp_path):
    """Another role fills the server to max_connections (less its superuser slots). The
    web worker keeps its pool open, so the console still halts; a shell needs a new
    connection: as the app's role it is refused, as KILLSWITCH_DATABASE_URL's (a role
    allowed into the reserved slots: a superuser on Postgres 15) it halts first try."""
    with private_stack(tmp_path, max_connections=12) as (stack, manage_env):
        manage = shell(manage_env, "ops_user", "olga", "--role", "operator", "--create")
        assert manage.returncode == 0, manage.stderr
        wait_for("the web worker's pool open", lambda: len(app_connections(stack)) == POOL_SIZE)
        with psycopg.connect(stack.postgres.url(DATABASE), autocommit=True) as admin:
            admin.execute("CREATE ROLE filler LOGIN")
        fillers = []
        try:
            while True:
                try:
                    fillers.append(
                        psycopg.connect(stack.postgres.url(DATABASE, user="filler"), connect_timeout=10)
                    )
                except psycopg.OperationalError as exc:
                    assert "reserved" in str(exc), exc
                    break
            assert stack.post_trade(stack.trade("while-full")).status_code == 201

            as_app = shell(
                manage_env,
                *("trading", "halt", "--scope", "symbol:TSLA", "--actor", "olga", "--reason", "full server"),
            )
            assert as_app.returncode != 0 and "reserved" in as_app.stderr, as_app.stderr
            killswitch_url = stack.postgres.url(DATABASE, user="postgres")
            as_killswitch = shell(
                {**manage_env, "KILLSWITCH_DATABASE_URL": killswitch_url},
                *("trading", "halt", "--scope", "symbol:TSLA", "--actor", "olga", "--reason", "full server"),
            )
            assert as_killswitch.returncode == 0, as_killswitch.stderr
            assert state_of(stack, "symbol:TSLA") == "HALTED"

            halted = console_halt(stack, "saturation test: server full")
            assert halted.status_code == 302, halted.text[:2000]
            assert state_of(stack, "global") == "HALTED"
        finally:
            for conn in fillers:
                conn.close()
