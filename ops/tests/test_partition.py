"""A network partition between the web servers and Postgres, with real processes.

A private Postgres cluster runs in a network namespace of its own, listening on its side
of a veth pair (ops/tests/private_network.py); gunicorn runs here, in ours, with
DATABASE_URL pointing across. The partition loses every packet both ways, silently, as
a dead host or a lost route does: no RST, no ICMP. Postgres keeps running
and never hears of it; only the TCP guards that settings.py gives libpq
(tcp_user_timeout, keepalives) can end a web worker's wait, and only the same guards on
the server's end (its tcp_* settings, asked for in each connection's options) can end a
backend left idle in a transaction, holding its locks, by a client that vanished.

The guards are short here (2 s) and gunicorn's timeout long (60 s): with the guards each
request gets its 503 within seconds; without them it would wait until gunicorn killed its
worker, which shows as a lost answer and as changed worker pids. Nothing here asserts a
duration: the time to each answer is printed (pytest -s), and every wait's deadline only
guards against a hang.

The test reads and locks rows over the cluster's Unix socket, which the partition of the
veth pair does not touch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from conftest import require_service
from ops.tests.conftest import database_url
from ops.tests.private_network import NetworkUnavailable, PrivateNetwork
from ops.tests.private_services import PrivatePostgres, PrivateRedis, ServiceUnavailable
from ops.tests.processes import (
    ROOT,
    wait_until_ready,
)
from ops.tests.test_faults import (
    DATABASE,
    WORKERS,
    Answer,
    Stack,
    assert_trading_state_unavailable,
    scrape,
    serving,
    wait_for,
)

# Short, so the test takes seconds; still far above a veth round trip on a loaded machine,
# so no healthy connection trips them. Both ends of every app connection get them.
GUARDS = {
    "DB_TCP_USER_TIMEOUT_MS": "2000",
    "DB_KEEPALIVES_IDLE": "1",
    "DB_KEEPALIVES_INTERVAL": "1",
    "DB_KEEPALIVES_COUNT": "2",
    "DB_CONNECT_TIMEOUT": "2",  # libpq's minimum
}
GUNICORN_TIMEOUT = 60
TCP_ESTABLISHED = "01"


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    """Print (never assert) how long the block took: the figures for the README and review."""
    started = time.monotonic()
    yield
    print(f"partition: {what}: {time.monotonic() - started:.2f}s")


@dataclass
class PartitionStack(Stack):
    network: PrivateNetwork
    env: dict[str, str]

    def local(self, **kwargs) -> psycopg.Connection:
        """A connection over the cluster's Unix socket, which the partition does not cut."""
        return psycopg.connect(
            host=str(self.postgres.root),
            port=self.postgres.port,
            user="postgres",
            dbname=DATABASE,
            connect_timeout=10,
            **kwargs,
        )

    def sql(self, query: str, *params) -> list[tuple]:
        with self.local(autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def books(self) -> tuple[list[tuple], list[tuple]]:
        """Every trade and position row, to compare before and after."""
        trades = self.sql(
            "SELECT id, client_order_id, side, quantity, price, strategy, symbol FROM ops_trade ORDER BY id"
        )
        positions = self.sql("SELECT strategy, symbol, quantity FROM ops_position ORDER BY strategy, symbol")
        return trades, positions

    def established(self) -> int:
        """Connections from this namespace to the cluster that the kernel holds open:
        the web workers' pooled connections (the test's own go over the Unix socket)."""
        address = socket.inet_aton(self.network.inner_address)[::-1].hex().upper()
        remote = f"{address}:{self.postgres.port:04X}"
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        return sum(1 for row in rows if row[2] == remote and row[3] == TCP_ESTABLISHED)

    def check_dependencies(self) -> subprocess.CompletedProcess:
        """`manage.py check_dependencies`, as on-call would run it on a web host."""
        return subprocess.run(
            [sys.executable, "manage.py", "check_dependencies"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,  # only against a hang
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[PartitionStack]:
    # A service test, like test_faults.py: it runs in CI's services pass.
    require_service(
        "postgresql" in settings.DATABASES["default"]["ENGINE"],
        "partition tests run in the services pass (DATABASE_URL on Postgres)",
    )
    folder = tmp_path_factory.mktemp("partition")
    # Every step stops what it started even when an earlier stop fails.
    with contextlib.ExitStack() as cleanup:
        try:
            network = PrivateNetwork()
            cleanup.callback(network.remove)
            network.create()
        except NetworkUnavailable as exc:
            require_service(False, f"no private network to partition: {exc}")
        try:
            postgres = PrivatePostgres(host=network.inner_address, prefix=network.exec_prefix)
        except ServiceUnavailable as exc:
            require_service(False, f"no private Postgres cluster: {exc}")
        cleanup.callback(postgres.remove)
        postgres.start()
        try:
            redis = PrivateRedis(folder)
        except ServiceUnavailable as exc:
            require_service(False, f"no private Redis: {exc}")
        cleanup.callback(redis.stop)
        redis.start()
        fields, manage_env = cleanup.enter_context(
            serving(
                folder,
                postgres,
                redis,
                "partition-engine",
                SECRET_KEY="partition-tests",
                # The in-flight test holds the gate's call on a row lock for seconds: the
                # server's own statement_timeout must not end it before the partition does.
                DB_STATEMENT_TIMEOUT_MS="60000",
                GUNICORN_TIMEOUT=str(GUNICORN_TIMEOUT),
                **GUARDS,
            )
        )
        stack = PartitionStack(**fields, network=network, env=manage_env)
        wait_for("both workers", stack.all_workers_up)
        yield stack


@pytest.fixture
def up(stack: PartitionStack, request) -> Iterator[PartitionStack]:
    """Each test starts with the link whole and the app ready, and leaves them so."""
    failed_before = request.session.testsfailed
    try:
        yield stack
    finally:
        if request.session.testsfailed > failed_before:
            print(stack.logs())  # shown with the failure
        if stack.network.is_cut:
            stack.network.heal()
        wait_until_ready(f"{stack.url}/readyz", stack.gunicorn)


def ids(prefix: str, count: int = WORKERS) -> list[str]:
    return [f"{prefix}-{uuid.uuid4().hex[:8]}" for _ in range(count)]


def test_every_postgres_connection_carries_the_tcp_guards(postgres):
    """The settings reach the kernel: libpq sets them on the socket of every connection."""
    host = connection.settings_dict["HOST"]
    require_service(bool(host) and not host.startswith("/"), "DATABASE_URL connects over a Unix socket")
    options = settings.DATABASES["default"]["OPTIONS"]
    connection.ensure_connection()
    with socket.socket(fileno=os.dup(connection.connection.pgconn.socket)) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == options["tcp_user_timeout"]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == options["keepalives"] == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == options["keepalives_idle"]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == options["keepalives_interval"]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == options["keepalives_count"]
    assert options["tcp_user_timeout"] > 0


SERVER_GUARDS = ("tcp_user_timeout", "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")


def server_settings(cursor, names: tuple[str, ...]) -> dict[str, int]:
    """What the server applies to this session, in base units (ms, s)."""
    cursor.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(names)])
    return {name: int(setting) for name, setting in cursor.fetchall()}


def test_every_postgres_connection_asks_the_server_for_the_same_guards(postgres):
    """The server's end of the connection gets them too (its `options`), so a backend
    whose client vanished mid-transaction ends and drops its locks."""
    host = connection.settings_dict["HOST"]
    require_service(bool(host) and not host.startswith("/"), "DATABASE_URL connects over a Unix socket")
    options = settings.DATABASES["default"]["OPTIONS"]
    with connection.cursor() as cursor:
        applied = server_settings(cursor, (*SERVER_GUARDS, "statement_timeout"))
    assert applied == {
        "tcp_user_timeout": options["tcp_user_timeout"],
        "tcp_keepalives_idle": options["keepalives_idle"],
        "tcp_keepalives_interval": options["keepalives_interval"],
        "tcp_keepalives_count": options["keepalives_count"],
        "statement_timeout": int(os.environ.get("DB_STATEMENT_TIMEOUT_MS", 5000)),
    }


GUARDS_OF_A_CONNECTION = """
import json, os, socket, django
django.setup()
from django.db import connection
connection.ensure_connection()
with socket.socket(fileno=os.dup(connection.connection.pgconn.socket)) as sock:
    keepidle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
with connection.cursor() as cursor:
    cursor.execute("SELECT name, setting FROM pg_settings WHERE name ~ '^(tcp_|statement_timeout)'")
    server = {name: int(setting) for name, setting in cursor.fetchall()}
print(json.dumps({"client_keepidle": keepidle, "server": server}))
"""


def guards_of_a_connection(**env: str) -> dict:
    """The guards on a fresh connection of a process started with these variables."""
    result = subprocess.run(
        [sys.executable, "-c", GUARDS_OF_A_CONNECTION],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "investiq.settings",
            "DATABASE_URL": database_url(),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def kernel(name: str) -> int:
    return int(Path(f"/proc/sys/net/ipv4/{name}").read_text())


def test_a_zero_keepalive_setting_means_the_kernels_value_not_a_failed_connection(postgres):
    # libpq would hand 0 to setsockopt(), which Linux refuses: settings leave it unset.
    # The server takes 0 as its own "the system default".
    host = connection.settings_dict["HOST"]
    require_service(bool(host) and not host.startswith("/"), "DATABASE_URL connects over a Unix socket")
    guards = guards_of_a_connection(
        DB_KEEPALIVES_IDLE="0",
        DB_KEEPALIVES_INTERVAL="0",
        DB_KEEPALIVES_COUNT="0",
        DB_TCP_USER_TIMEOUT_MS="0",
    )
    assert guards["client_keepidle"] == kernel("tcp_keepalive_time")
    # The shared server runs on this machine, with this kernel's values.
    assert {name: guards["server"][name] for name in SERVER_GUARDS} == {
        "tcp_user_timeout": 0,
        "tcp_keepalives_idle": kernel("tcp_keepalive_time"),
        "tcp_keepalives_interval": kernel("tcp_keepalive_intvl"),
        "tcp_keepalives_count": kernel("tcp_keepalive_probes"),
    }


def test_the_urls_own_server_options_are_kept_and_win_over_ours(postgres):
    host = connection.settings_dict["HOST"]
    require_service(bool(host) and not host.startswith("/"), "DATABASE_URL connects over a Unix socket")
    url = database_url() + "?options=" + quote("-c statement_timeout=1234 -c tcp_keepalives_count=7")
    server = guards_of_a_connection(DATABASE_URL=url, DB_KEEPALIVES_IDLE="4")["server"]
    assert server["statement_timeout"] == 1234
    assert server["tcp_keepalives_count"] == 7
    assert server["tcp_keepalives_idle"] == 4  # ours, still there


def test_during_a_partition_everything_answers_503_in_seconds_and_the_same_workers_serve_after_it(up):
    pids = up.worker_pids()
    warm = ids("part-warm")
    answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in warm], "part-warm")
    assert [a.status for a in answers] == [201] * WORKERS
    books = up.books()

    up.network.cut()
    # Each worker's pooled connection was idle when the link went; the first bytes into
    # the void are each request's CONN_HEALTH_CHECKS query (tcp_user_timeout ends it),
    # then the reconnect (connect_timeout ends that).
    refused = ids("part-cut")
    with timed("gate POST /api/v1/trades, 503 on both workers"):
        answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in refused], "part-cut")
    for answer in answers:
        assert_trading_state_unavailable(answer)
    with timed("GET /api/v1/trading/status, 503 on both workers"):
        answers = up.on_every_worker(
            "GET", "/api/v1/trading/status?symbol=AAPL", [None] * WORKERS, "part-status"
        )
    for answer in answers:
        assert_trading_state_unavailable(answer)

    assert up.get("/healthz").status_code == 200
    with timed("/readyz 503"):
        ready = up.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"database": "unreachable (OperationalError)", "broker": "ok"},
    }
    # The on-call's pages: the outage page, not a 500 and not a hang.
    for path in ("/", "/admin/"):
        with timed(f"{path} 503 outage page"):
            page = up.console.get(f"{up.url}{path}", timeout=30)
        assert page.status_code == 503 and "refuses every new trade" in page.text, path
    with timed("/metrics"):
        assert scrape(up)[("investiq_metrics_database_up", ())] == 0
    with timed("manage.py check_dependencies"):
        probed = up.check_dependencies()
    assert probed.returncode == 1, probed.stdout + probed.stderr
    assert re.search(r"^database\s+DOWN\b", probed.stdout, re.MULTILINE), probed.stdout

    up.network.heal()
    # No worker was killed for hanging; the same ones serve again, without a restart:
    # CONN_HEALTH_CHECKS dropped each dead connection and each opens a new one.
    assert up.worker_pids() == pids
    assert up.books() == books  # nothing of the refused orders was written
    after = ids("part-healed")
    answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in after], "part-healed")
    assert [a.status for a in answers] == [201] * WORKERS, [a.body for a in answers]
    assert up.get("/readyz").status_code == 200
    assert up.console.get(f"{up.url}/", timeout=30).status_code == 200
    assert up.worker_pids() == pids
    assert up.recorded(warm + refused + after) == set(warm + after)
    up.assert_books_balance()


def test_an_idle_pooled_connection_is_found_dead_before_a_request_needs_it(up):
    pids = up.worker_pids()
    warm = up.on_every_worker("GET", "/api/v1/trading/status?symbol=AAPL", [None] * WORKERS, "idle-warm")
    assert [a.status for a in warm] == [200] * WORKERS
    # Each worker's pool holds one or two (it may grow while it opens the first).
    wait_for("each worker's pooled connection", lambda: up.established() >= WORKERS)

    up.network.cut()
    # Nobody sends anything: only keepalive probes can find these connections dead.
    # Without them the kernel would hold them open for hours, and the wait below fails.
    with timed("keepalive closed both idle pooled connections"):
        wait_for("the kernel closed the idle pooled connections", lambda: up.established() == 0)
    refused = ids("idle-cut")
    with timed("gate 503 on both workers after the keepalive (the reconnect's connect_timeout)"):
        answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in refused], "idle-cut")
    for answer in answers:
        assert_trading_state_unavailable(answer)

    up.network.heal()
    after = ids("idle-healed")
    answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in after], "idle-healed")
    assert [a.status for a in answers] == [201] * WORKERS, [a.body for a in answers]
    assert up.worker_pids() == pids
    assert up.recorded(refused + after) == set(after)


def test_a_partition_during_the_gate_statement_loses_the_answer_not_the_order(up):
    """The Postgres gate (one ops_submit_trade() call) loses the link while the server
    runs it. The worker waits for a result with nothing unacknowledged, so only the
    keepalive can end the wait: the client gets 503. The server, which never saw the
    partition, finishes the call and commits; its answer is what is lost. The order is
    whole (trade, position and counter together), and its identical retry returns it."""
    pids = up.worker_pids()
    opening = up.post_trade(up.trade(ids("inflight-open", 1)[0], symbol="MSFT", strategy="inflight"))
    assert opening.status_code == 201, opening.text
    order = up.trade(ids("inflight", 1)[0], symbol="MSFT", strategy="inflight")
    answered: dict[str, requests.Response | Exception] = {}

    def submit() -> None:
        try:
            answered["gate"] = up.post_trade(order)
        except requests.RequestException as exc:
            answered["gate"] = exc

    with up.local() as holder:
        # The gate takes the position lock first: holding it keeps the call on the server.
        holder.execute(
            "SELECT 1 FROM ops_position WHERE strategy = %s AND symbol = %s FOR UPDATE", ("inflight", "MSFT")
        )
        sender = threading.Thread(target=submit, daemon=True)
        sender.start()
        wait_for(
            "the gate's call waiting on the position lock",
            lambda: (
                up.sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                    "%ops_submit_trade%",
                )
                == [(1,)]
            ),
        )
        up.network.cut()
        with timed("gate 503 while its statement ran on the server (keepalive)"):
            sender.join(timeout=GUNICORN_TIMEOUT + 30)
        answer = answered.get("gate")
        assert isinstance(answer, requests.Response), answer
        assert_trading_state_unavailable(Answer(answer.status_code, answer.content))
        # The server commits this order below: a 503 saying "refused" would be false.
        assert "not confirmed" in answer.json()["detail"], answer.json()
        holder.rollback()  # the server's call goes on and commits; its answer goes nowhere

    wait_for("the server's commit of the order", lambda: up.recorded([order["client_order_id"]]))
    up.network.heal()
    retry = up.post_trade(order)
    assert retry.status_code == 200, retry.text  # an identical retry: the original trade
    assert retry.json()["client_order_id"] == order["client_order_id"]
    up.assert_books_balance()
    assert up.worker_pids() == pids


# Host A: the real halt, stopped right after it has locked the scope's row (FOR UPDATE),
# before its event and COMMIT. Prints its backend's pid, then waits for a line on stdin.
HALT_HELD_AT_ITS_LOCK = """
import sys, django
django.setup()
from django.db import connection
from ops.trading import service
from ops.trading.models import TradingState

scope = sys.argv[1]
TradingState.objects.get_or_create(scope=scope)
lock = service._locked

def locked_then_wait(scope):
    row = lock(scope)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        print(cursor.fetchone()[0], flush=True)
    sys.stdin.readline()
    return row

service._locked = locked_then_wait
actor = service.Actor.system("partitioned-host", service.HALT)
service.halt(scope, reason="cut off mid-halt", actor=actor, to_state="REDUCING")
"""
# Only against a hang: without the server-side guards the dead backend holds the lock
# for about two hours (the kernel's keepalive), and this is where the test fails.
LOCK_HANG_GUARD = 120


def test_a_host_cut_off_mid_halt_releases_the_lock_so_a_halt_from_elsewhere_goes_through(up):
    """Host A (here) is inside a halt, the scope's row locked, when its link goes. Its
    backend, idle in transaction, hears nothing; only the server's own TCP guards can
    end it. Meanwhile an operator on a host that still reaches the cluster (inside its
    namespace) runs `manage.py trading halt`, retrying as a person would: each try waits
    the production statement_timeout on the lock. It goes through once the dead backend
    is gone, with its event; host A's halt is never recorded."""
    scope = f"strategy:{ids('cut-halt', 1)[0]}"
    host_a = subprocess.Popen(
        [sys.executable, "-c", HALT_HELD_AT_ITS_LOCK, scope],
        cwd=ROOT,
        env={**up.env, "DJANGO_SETTINGS_MODULE": "investiq.settings"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    halt = None
    pid = None
    try:
        ready, _, _ = select.select([host_a.stdout], [], [], 120)
        assert ready, "host A did not reach its lock"
        line = host_a.stdout.readline()
        assert line.strip().isdigit(), line + host_a.stderr.read()
        pid = int(line)
        assert up.sql("SELECT state FROM pg_stat_activity WHERE pid = %s", pid) == [("idle in transaction",)]

        up.network.cut()
        cut_at = time.monotonic()
        # Host A carries on into the void: its event and COMMIT never arrive.
        host_a.stdin.write("\n")
        host_a.stdin.flush()

        # The production statement_timeout, not the stack's long one: each try gives up
        # after 5 s on the lock, as the operator's would.
        operator_env = {**up.env, "DB_STATEMENT_TIMEOUT_MS": "5000"}
        halt_command = [
            *up.network.exec_prefix,
            *(sys.executable, "manage.py", "trading", "halt", "--scope", scope),
            *("--reason", "halt from a host that reaches the database", "--actor", "sam"),
        ]
        tries: list[subprocess.CompletedProcess] = []
        released_after = None
        while time.monotonic() - cut_at < LOCK_HANG_GUARD:
            if released_after is None and not up.sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid):
                released_after = time.monotonic() - cut_at
            if halt is None:
                halt = subprocess.Popen(
                    halt_command,
                    cwd=ROOT,
                    env=operator_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            elif halt.poll() is not None:
                stdout, stderr = halt.communicate()
                tries.append(subprocess.CompletedProcess(halt.args, halt.returncode, stdout, stderr))
                halt = None
                if tries[-1].returncode == 0:
                    break
            time.sleep(0.1)
        if released_after is None and not up.sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid):
            released_after = time.monotonic() - cut_at  # gone between the last look and the halt
        print(
            f"partition: the lock was held {released_after:.2f}s after the cut"
            if released_after is not None
            else f"partition: the lock was still held {LOCK_HANG_GUARD}s after the cut"
        )
        print(f"partition: halt tries from the namespace: {[t.returncode for t in tries]}")

        assert tries, "no halt try ended"
        last = tries[-1]
        assert last.returncode == 0, f"{len(tries)} tries, the last: {last.stdout}{last.stderr}"
        assert "ACTIVE -> HALTED" in last.stdout, last.stdout
        assert not up.sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid)
        assert up.sql(
            "SELECT from_state, to_state, actor, source FROM ops_tradingevent WHERE scope = %s", scope
        ) == [("ACTIVE", "HALTED", "sam", "command")]
        assert up.sql("SELECT state FROM ops_tradingstate WHERE scope = %s", scope) == [("HALTED",)]
        # Host A's own client-side guards failed its halt (no answer from the server).
        assert host_a.wait(timeout=60) != 0
    finally:
        for process in (halt, host_a):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
        if pid is not None:
            # Without the guards (a failing run) the backend would outlive the module.
            up.sql("SELECT pg_terminate_backend(%s)", pid)
