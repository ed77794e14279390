"""Faults with real processes: Redis and Postgres really stop, gunicorn really serves.

The module starts its own Postgres cluster and redis-server on free ports (the shared
127.0.0.1:5432 and :6379 serve other test runs and are never touched), migrates the
cluster, and runs gunicorn with two workers on both. Then it stops and restarts those
private services under the running server: nothing that fails is mocked.

Nothing here measures time. Every wait polls for a condition under a deadline that
only guards against a hang; a hang that gunicorn itself notices (a worker past its
timeout is killed and replaced) shows as changed worker pids.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from conftest import require_service
from ops.tests.private_services import PrivatePostgres, PrivateRedis, ServiceUnavailable
from ops.tests.processes import (
    ROOT,
    NotReady,
    free_port,
    log_in,
    start_process,
    stop_process,
    wait_until_ready,
)

WORKERS = 2
DATABASE = "investiq"
PASSWORD_LINE = re.compile(r"with password \(shown once\): (\S+)")
# gunicorn's access log as "<pid> status tag": which worker answered which request.
ACCESS_LOG_FORMAT = "%(p)s %(s)s %({x-fault-tag}i)s"
ACCESS_LINE = re.compile(r"^<(\d+)> (\d{3}) (\S+)$", re.MULTILINE)


def wait_for(what: str, condition: Callable[[], object], within: float = 60.0) -> None:
    """Poll until `condition()` is true; the deadline only stops a hang."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:g}s")
        time.sleep(0.1)


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Stack:
    url: str
    port: int
    postgres: PrivatePostgres
    redis: PrivateRedis
    gunicorn: subprocess.Popen
    log: Path
    token: str
    console: requests.Session

    # --- processes ---------------------------------------------------------------------
    def worker_pids(self) -> set[int]:
        """gunicorn's workers: the master's children, read from /proc."""
        children = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue  # exited while we looked
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            if int(text.rpartition(")")[2].split()[1]) == self.gunicorn.pid:
                children.add(int(stat.parent.name))
        return children

    def all_workers_up(self) -> bool:
        return self.gunicorn.poll() is None and len(self.worker_pids()) == WORKERS

    def logs(self) -> str:
        gunicorn = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        postgres, redis = self.postgres.log_tail(), self.redis.log_tail()
        return f"--- gunicorn\n{gunicorn}\n--- postgres\n{postgres}\n--- redis\n{redis}"

    # --- HTTP ------------------------------------------------------------------------------
    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30, **kwargs)

    def trade(
        self, client_order_id: str, side: str = "buy", symbol: str = "AAPL", strategy: str = "faults"
    ) -> dict:
        return {
            "client_order_id": client_order_id,
            "symbol": symbol,
            "side": side,
            "quantity": "3",
            "price": "100.25",
            "strategy": strategy,
        }

    def post_trade(self, payload: dict) -> requests.Response:
        return requests.post(
            f"{self.url}/api/v1/trades",
            json=payload,
            headers={"Authorization": f"Bearer {self.token}", "Connection": "close"},
            timeout=30,
        )

    def on_every_worker(self, method: str, path: str, bodies: list[dict | None], tag: str) -> list[Answer]:
        """One request per worker, so each worker (and its own persistent database
        connection) answers exactly one: the answers come back in the order of `bodies`.

        A sync worker that has accepted a connection blocks reading it. Every request
        is sent all but its final byte; once the listen socket's accept queue is empty,
        each idle worker holds one of them (none can take a second), and only then are
        they finished. The access log confirms which pids answered.
        """
        assert len(bodies) == WORKERS
        tags = [f"{tag}-{index}" for index in range(WORKERS)]
        wires = []
        for body, request_tag in zip(bodies, tags, strict=True):
            payload = b"" if body is None else json.dumps(body).encode()
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                f"Authorization: Bearer {self.token}\r\nX-Fault-Tag: {request_tag}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode()
            wires.append(head + payload)
        sockets = []
        try:
            for wire in wires:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                sockets.append(sock)
                sock.sendall(wire[:-1])
            wait_for("every connection accepted by a worker", lambda: accept_queue_length(self.port) == 0)
            for sock, wire in zip(sockets, wires, strict=True):
                sock.sendall(wire[-1:])
            answers = [_read_answer(sock) for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
        wait_for("the access log lines", lambda: all(t in self.answered_by() for t in tags), within=30)
        answered = self.answered_by()
        assert {answered[t] for t in tags} == self.worker_pids(), answered
        return answers

    def answered_by(self) -> dict[str, int]:
        """tag -> pid of the worker that answered it, from the access log."""
        text = self.log.read_text(errors="replace")
        return {match[3]: int(match[1]) for match in ACCESS_LINE.finditer(text)}

    # --- the private database, read directly --------------------------------------------
    def sql(self, query: str, *params) -> list[tuple]:
        with psycopg.connect(self.postgres.url(DATABASE), autocommit=True, connect_timeout=10) as conn:
            return conn.execute(query, params).fetchall()

    def recorded(self, client_order_ids: list[str]) -> set[str]:
        rows = self.sql(
            "SELECT client_order_id FROM ops_trade WHERE client_order_id = ANY(%s)", client_order_ids
        )
        return {row[0] for row in rows}

    def assert_books_balance(self) -> None:
        """Every trade is whole: its position moved with it and its counter counted it."""
        signed = self.sql(
            "SELECT strategy, symbol, SUM(CASE WHEN side = 'buy' THEN quantity ELSE -quantity END) "
            "FROM ops_trade GROUP BY strategy, symbol"
        )
        positions = self.sql("SELECT strategy, symbol, quantity FROM ops_position")
        expected = {(strategy, symbol): Decimal(total) for strategy, symbol, total in signed}
        held = {(strategy, symbol): Decimal(quantity) for strategy, symbol, quantity in positions}
        assert {key: value for key, value in held.items() if value != 0 or key in expected} == expected
        counted = self.sql(
            "SELECT label, SUM(value) FROM ops_metriccounter WHERE name = 'trades' GROUP BY label"
        )
        per_side = self.sql("SELECT side, COUNT(*) FROM ops_trade GROUP BY side")
        assert {label: int(total) for label, total in counted} == {side: n for side, n in per_side}


def accept_queue_length(port: int) -> int:
    """Connections waiting in the accept queue of the listener on 127.0.0.1:`port`
    (the rx_queue column of a LISTEN row in /proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        columns = line.split()
        if columns[1] == local and columns[3] == "0A":
            return int(columns[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def _read_answer(sock: socket.socket) -> Answer:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return Answer(int(head.split()[1]), body)


def scrape(stack: Stack) -> dict[tuple[str, tuple], float]:
    text = stack.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # only against a hang
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


@contextlib.contextmanager
def serving(
    folder: Path,
    postgres: PrivatePostgres,
    redis: PrivateRedis,
    engine: str,
    *,
    role: str = "postgres",
    workers: int = WORKERS,
    gunicorn_args: str = "",
    **env: str,
) -> Iterator[tuple[dict, dict[str, str]]]:
    """The app on `postgres` and `redis`: a fresh database migrated, an API token for
    `engine`, a supervisor logged in, and gunicorn with `workers` workers; `env` on top of
    the common settings. The app connects as `role` (created, and owner of the database,
    unless it is the superuser postgres). Yields Stack's fields and the environment for
    manage.py; stops gunicorn at the end."""
    with psycopg.connect(postgres.url("postgres"), autocommit=True, connect_timeout=10) as conn:
        if role != "postgres":
            conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {role}")
    port = free_port()
    env = {
        "DATABASE_URL": postgres.url(DATABASE, user=role),
        "REDIS_URL": redis.url,
        "CELERY_BROKER_URL": redis.url,
        "ALLOWED_HOSTS": "127.0.0.1",
        "INVESTIQ_VAR_DIR": str(folder / "var"),
        "METRICS_TOKEN": "",
        # Plain HTTP on the loopback: the session cookie must come back to us.
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        **env,
    }
    manage_env = {**os.environ, **env}
    # Commands are no gunicorn worker: multiprocess metrics would want that folder.
    manage_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    _manage(manage_env, "migrate", "--noinput")
    token = _manage(manage_env, "create_api_token", engine).strip()
    created = _manage(manage_env, "ops_user", "sam", "--role", "supervisor", "--create")
    password = PASSWORD_LINE.search(created)[1]

    env |= {
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "multiproc"),
        "GUNICORN_CMD_ARGS": f"--access-logformat '{ACCESS_LOG_FORMAT}' {gunicorn_args}".strip(),
    }
    log = folder / "gunicorn.log"
    gunicorn = start_process(["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"], env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(f"{url}/readyz", gunicorn)
        except NotReady as exc:
            pytest.fail(f"gunicorn did not start: {exc}\n{log.read_text()[-3000:]}")
        fields = {
            "url": url,
            "port": port,
            "postgres": postgres,
            "redis": redis,
            "gunicorn": gunicorn,
            "log": log,
            "token": token,
            "console": log_in(url, "sam", password),
        }
        yield fields, manage_env
    finally:
        stop_process(gunicorn)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    # A service test: it runs in CI's services pass, skips on the newcomer path.
    require_service(
        "postgresql" in settings.DATABASES["default"]["ENGINE"],
        "fault tests run in the services pass (DATABASE_URL on Postgres)",
    )
    folder = tmp_path_factory.mktemp("faults")
    try:
        postgres = PrivatePostgres()
    except ServiceUnavailable as exc:
        require_service(False, f"no private Postgres cluster: {exc}")
    # Every step stops what it started even when an earlier stop fails.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(postgres.remove)
        postgres.start()
        try:
            redis = PrivateRedis(folder)
        except ServiceUnavailable as exc:
            require_service(False, f"no private Redis: {exc}")
        cleanup.callback(redis.stop)
        redis.start()
        fields, _ = cleanup.enter_context(
            serving(
                folder,
                postgres,
                redis,
                "fault-engine",
                SECRET_KEY="fault-tests",
                TRADING_TWO_PERSON_RESUME="false",
                BROKER_CANCEL_WAIT_SECONDS="0.5",
            )
        )
        stack = Stack(**fields)
        wait_for("both workers", stack.all_workers_up)
        yield stack


@pytest.fixture
def up(stack: Stack, request) -> Iterator[Stack]:
    """Each test starts with both services up and the app ready, and leaves them up."""
    failed_before = request.session.testsfailed
    try:
        yield stack
    finally:
        if request.session.testsfailed > failed_before:
            print(stack.logs())  # shown with the failure
        if not stack.redis.running():
            stack.redis.start()
        if not stack.postgres.running():
            stack.postgres.start()
        wait_until_ready(f"{stack.url}/readyz", stack.gunicorn)


def test_with_redis_stopped_the_gate_the_console_and_metrics_keep_serving(up: Stack):
    pids = up.worker_pids()
    up.redis.stop()

    ready = up.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "unreachable (ConnectionError)"},
    }
    assert up.get("/healthz").status_code == 200

    ids = [f"redis-down-{uuid.uuid4().hex[:8]}" for _ in range(WORKERS)]
    answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in ids], "redis-down")
    assert [a.status for a in answers] == [201] * WORKERS, [a.body for a in answers]
    assert up.recorded(ids) == set(ids)

    page = up.console.get(f"{up.url}/", timeout=30)
    assert page.status_code == 200 and "Controls" in page.text

    samples = scrape(up)
    (bought,) = up.sql("SELECT COUNT(*) FROM ops_trade WHERE side = 'buy'")[0]
    assert samples[("investiq_trades_total", (("side", "buy"),))] == bought
    assert samples[("investiq_metrics_database_up", ())] == 1

    # The moment people halt is when things break: a global halt that also cancels
    # orders (a Celery task, through the dead broker) stands, and the gate enforces it.
    halted = _console_post(
        up,
        "/console/halt",
        {
            "halt-scope_0": "global",
            "halt-state": "HALTED",
            "halt-reason": "fault test: broker down",
            "halt-cancel_orders": "on",
            "halt-confirm": "HALT",
        },
    )
    assert halted.status_code == 302, halted.text[:2000]
    assert up.sql("SELECT state FROM ops_tradingstate WHERE scope = 'global'") == [("HALTED",)]
    assert up.sql("SELECT broker_outcome FROM ops_tradingevent ORDER BY id DESC LIMIT 1") == [("pending",)]
    refused = up.on_every_worker(
        "POST", "/api/v1/trades", [up.trade(f"while-halted-{i}") for i in range(WORKERS)], "halted"
    )
    assert {(a.status, a.json()["error"]) for a in refused} == {(423, "trading_halted")}
    resumed = _console_post(
        up,
        "/console/resume",
        {
            "resume-scope_0": "global",
            "resume-state": "ACTIVE",
            "resume-reason": "fault test: resumed",
            "resume-confirm": "RESUME",
        },
    )
    assert resumed.status_code == 302
    assert up.sql("SELECT state FROM ops_tradingstate WHERE scope = 'global'") == [("ACTIVE",)]

    # No worker hung (gunicorn would have replaced it) and none restarted.
    assert up.worker_pids() == pids
    up.redis.start()
    wait_until_ready(f"{up.url}/readyz", up.gunicorn)
    assert up.worker_pids() == pids


def _console_post(stack: Stack, path: str, data: dict) -> requests.Response:
    page = stack.console.get(f"{stack.url}/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    return stack.console.post(
        f"{stack.url}{path}",
        data={"csrfmiddlewaretoken": csrf, **data},
        headers={"Referer": f"{stack.url}/"},
        allow_redirects=False,
        timeout=30,
    )


def assert_trading_state_unavailable(answer: Answer) -> None:
    # The contract's 503 exactly: the error shape with no fields, nothing else.
    assert answer.status == 503, answer.body
    body = answer.json()
    assert set(body) == {"error", "detail"} and body["error"] == "trading_state_unavailable", body


def test_with_postgres_stopped_the_gate_fails_closed_and_recovers_without_a_restart(up: Stack):
    pids = up.worker_pids()
    # Each worker first holds a live persistent connection (CONN_MAX_AGE), which dies.
    before = [f"pg-before-{uuid.uuid4().hex[:8]}" for _ in range(WORKERS)]
    answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in before], "pg-before")
    assert [a.status for a in answers] == [201] * WORKERS
    up.postgres.stop("fast")

    refused = [f"pg-down-{uuid.uuid4().hex[:8]}" for _ in range(WORKERS)]
    for answer in up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in refused], "pg-down"):
        assert_trading_state_unavailable(answer)
    for answer in up.on_every_worker(
        "GET", "/api/v1/trading/status?symbol=AAPL", [None] * WORKERS, "pg-status"
    ):
        assert_trading_state_unavailable(answer)
    assert up.get("/healthz").status_code == 200
    ready = up.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"database": "unreachable (OperationalError)", "broker": "ok"},
    }
    samples = scrape(up)
    assert samples[("investiq_metrics_database_up", ())] == 0
    # The on-call's page says what the outage means instead of a bare "Server Error (500)".
    page = up.console.get(f"{up.url}/", timeout=30)
    assert page.status_code == 503 and "refuses every new trade" in page.text

    up.postgres.start()
    # The same processes recover: no worker was replaced, none needs a restart.
    assert up.worker_pids() == pids
    after = [f"pg-back-{uuid.uuid4().hex[:8]}" for _ in range(WORKERS)]
    answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in after], "pg-back")
    assert [a.status for a in answers] == [201] * WORKERS, [a.body for a in answers]
    assert up.get("/readyz").status_code == 200
    assert up.console.get(f"{up.url}/", timeout=30).status_code == 200
    assert up.worker_pids() == pids

    # Nothing of the refused orders was written; a retry of one now records it.
    assert up.recorded(before + refused + after) == set(before + after)
    assert up.post_trade(up.trade(refused[0])).status_code == 201
    up.assert_books_balance()


def test_a_postgres_restart_between_requests_costs_no_request(up: Stack):
    pids = up.worker_pids()
    warm = up.on_every_worker("GET", "/api/v1/trading/status?symbol=AAPL", [None] * WORKERS, "warm")
    assert [a.status for a in warm] == [200] * WORKERS
    # Every worker now holds a connection to a server that goes away and comes back.
    up.postgres.stop("fast")
    up.postgres.start()
    ids = [f"pg-restarted-{uuid.uuid4().hex[:8]}" for _ in range(WORKERS)]
    answers = up.on_every_worker("POST", "/api/v1/trades", [up.trade(i) for i in ids], "restarted")
    # CONN_HEALTH_CHECKS: each worker finds its dead connection and opens a new one.
    assert [a.status for a in answers] == [201] * WORKERS, [a.body for a in answers]
    assert up.worker_pids() == pids


class Traders:
    """Threads that send trades without pause and keep every answer."""

    def __init__(self, stack: Stack, threads: int = 4) -> None:
        self.stack = stack
        self.answers: list[tuple[dict, int, str]] = []  # the order sent, status, error code
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._trade, args=(n,), daemon=True) for n in range(threads)]

    def _trade(self, n: int) -> None:
        count = 0
        while not self.stop.is_set():
            count += 1
            client_order_id = f"load-{n}-{count}-{uuid.uuid4().hex[:6]}"
            payload = self.stack.trade(
                client_order_id,
                side="buy" if count % 3 else "sell",
                symbol=("AAPL", "MSFT")[n % 2],
                strategy=("load-a", "load-b")[count % 2],
            )
            try:
                response = self.stack.post_trade(payload)
                status, error = response.status_code, response.json().get("error", "")
            except (requests.RequestException, ValueError) as exc:
                status, error = 0, type(exc).__name__
            with self.lock:
                self.answers.append((payload, status, error))

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for _, answered, _ in self.answers if answered == status)

    def __enter__(self) -> Traders:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_going_down_under_load_leaves_nothing_half_written(up: Stack, mode: str):
    pids = up.worker_pids()
    with Traders(up) as traders:
        wait_for("trades accepted before the outage", lambda: traders.count(201) >= 20)
        # fast: the server ends every session, rolling back transactions in flight.
        # immediate: every Postgres process quits at once, like a crash; at start the
        # server recovers from its WAL.
        up.postgres.stop(mode)
        wait_for("trades refused while Postgres is down", lambda: traders.count(503) >= 6)
        accepted_before = traders.count(201)
        up.postgres.start()
        wait_for("trades accepted again", lambda: traders.count(201) >= accepted_before + 20)
    assert up.worker_pids() == pids

    statuses = {status for _, status, _ in traders.answers}
    assert statuses == {201, 503}, sorted(statuses)
    assert {error for _, status, error in traders.answers if status == 503} == {"trading_state_unavailable"}
    accepted = [order["client_order_id"] for order, status, _ in traders.answers if status == 201]
    refused = [order for order, status, _ in traders.answers if status == 503]
    assert up.recorded(accepted) == set(accepted)
    up.assert_books_balance()
    # A refused order may have committed just as the server died (the answer was lost,
    # not the trade): its retry then returns it (200), otherwise records it (201). Either
    # way a second retry is an identical retry, and the books still balance.
    assert {up.post_trade(order).status_code for order in refused} <= {200, 201}
    assert {up.post_trade(order).status_code for order in refused} == {200}
    up.assert_books_balance()
