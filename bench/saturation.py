"""P7: the kill switch under saturation, on Postgres.

Run from the README's venv, with the machine's Postgres (and wrk for --throughput):
    .venv/bin/python bench/saturation.py [--servers runserver,gthread] [--clients 32]
        [--seconds 6] [--halt-at 2] [--latency-rounds 40] [--throughput-rounds 6] [--callgrind]

1. The issue's scenario, per server (`manage.py runserver`, and gunicorn's 3 workers
   with `--worker-class gthread --threads 16`): CLIENTS threads post unique trades for SECONDS;
   at HALT_AT a shell runs `manage.py trading halt` (a real process, as an operator types
   it). Printed: whether the halt succeeded first try, trades accepted that began after
   the command returned (target 0), 5xx answers (target 0), and the app's connections
   sampled every 20 ms from pg_stat_activity (peak; target <= pool size x processes +
   the shell's). --new-connections: a TCP connection per request (runserver then starts
   a thread per request); --pool-env '{"DB_POOL_SIZE": "0"}' runs it as before the pool.
2. Halt latency under the same load: a process of its own calls the kill switch's
   service, halt then resume, LATENCY_ROUNDS times while CLIENTS threads post trades to
   gunicorn gthread; p50/p99 of the halt call (target p99 <= 250 ms).
3. Throughput with the pool against without it (DB_POOL_SIZE=0: one persistent
   connection per thread, as before issue 16): two gunicorn servers (1 sync worker each,
   the shipped worker class) on one database, wrk posting unique trades to each in
   alternating rounds; the median of the per-round ratios (target >= 0.95). With
   --callgrind, also the web process's instructions per trade, both ways (repeatable).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from _servers import (
    ROOT,
    WRK_TRADES_SCRIPT,
    Answer,
    add_api_token,
    fresh_database,
    gunicorn,
    instructions,
    posting_trades,
    side_by_side,
    wrk,
)

from ops.tests.processes import free_port, start_process, stop_process, wait_until_ready

TOKEN = "iq_bench-token-not-secret"  # noqa: S105 - a throwaway database
SERVERS = ("runserver", "gthread")
COMMON_ENV = {
    "SECRET_KEY": "bench",
    "ALLOWED_HOSTS": "127.0.0.1",
    "REDIS_URL": "",
    "CELERY_BROKER_URL": "filesystem://",
    "LOG_LEVEL": "ERROR",
    "TRADING_TWO_PERSON_RESUME": "false",
}


@dataclass
class Run:
    answers: list[Answer] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=check,
    )


@contextlib.contextmanager
def runserver(env: dict[str, str], folder: Path) -> Iterator[str]:
    port = free_port()
    # start_process runs `python -m <args>`: django's runserver, threaded (a thread per
    # request), without the autoreloader's second process.
    server = start_process(
        ["django", "runserver", f"127.0.0.1:{port}", "--noreload", "--settings", "investiq.settings"],
        env,
        Path(os.environ.get("BENCH_RUNSERVER_LOG", folder / "runserver.log")),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/healthz", server)
        yield url
    finally:
        stop_process(server)


@contextlib.contextmanager
def server(kind: str, database: str, env: dict[str, str], folder: Path) -> Iterator[str]:
    if kind == "runserver":
        with runserver({**env, "DATABASE_URL": database}, folder) as url:
            yield url
        return
    # gunicorn.conf.py's default of 3 workers (WEB_CONCURRENCY), 16 threads each.
    with gunicorn(database, workers=3, GUNICORN_CMD_ARGS="--worker-class gthread --threads 16", **env) as url:
        yield url


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def sample_connections(database: str, run: Run, stop: threading.Event) -> None:
    """The app's connections to `database`, every 20 ms (this sampler's own excluded)."""
    with psycopg.connect(database.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [database_name(database)],
            ).fetchone()
            run.connections.append(row[0])
            time.sleep(0.02)


def scenario(
    kind: str, clients: int, seconds: float, halt_at: float, pool: dict[str, str], new_connections: bool
) -> None:
    """The issue's test: a shell's halt while CLIENTS threads saturate the server."""
    run = Run()
    with fresh_database("investiq_bench_saturation") as db, tempfile.TemporaryDirectory() as tmp:
        env = {**COMMON_ENV, **pool, "INVESTIQ_VAR_DIR": f"{tmp}/var"}
        add_api_token(db, TOKEN)
        manage({**env, "DATABASE_URL": db}, "ops_user", "alice", "--role", "operator", "--create")
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=sample_connections, args=(db, run, stop_sampling))
        with server(kind, db, env, Path(tmp)) as base:
            sampler.start()
            began = time.monotonic()
            overflows = listen_overflows()
            with posting_trades(
                base, TOKEN, clients, run.answers, kind, new_connections=new_connections
            ) as errors:
                time.sleep(halt_at)
                halt_started, halt_wall = time.monotonic(), time.time()
                halt = manage(
                    {**env, "DATABASE_URL": db},
                    *("trading", "halt", "--actor", "alice", "--reason", "bench: saturation"),
                    check=False,
                )
                halt_returned = time.monotonic()
                time.sleep(max(0.0, seconds - (halt_returned - began)))
            overflows = listen_overflows() - overflows
            stop_sampling.set()
            sampler.join()
        with psycopg.connect(db.replace("postgres://", "postgresql://", 1)) as conn:
            committed = conn.execute("SELECT max(created_at) FROM ops_tradingevent").fetchone()[0]
    statuses = [answer.status for answer in run.answers]
    after = [a for a in run.answers if a.started > halt_returned]
    before = [a for a in run.answers if a.ended < halt_started and a.status == 201]
    five_xx = sum(1 for s in statuses if isinstance(s, int) and s >= 500)
    how = "a new connection per request" if new_connections else "keep-alive"
    print(
        f"\n== {kind}: {clients} clients ({how}) for {seconds:g} s, `manage.py trading halt` at {halt_at:g} s"
    )
    print("   answers: " + ", ".join(f"{s}: {statuses.count(s)}" for s in sorted(set(statuses), key=str)))
    print(f"   accepted before the halt: {len(before) / (halt_started - began):.0f} trades/s")
    print(
        f"   halt: exit {halt.returncode} in {halt_returned - halt_started:.2f} s"
        + (
            f", committed {committed.timestamp() - halt_wall:.2f} s after it started"
            if halt.returncode == 0
            else f" -- {halt.stderr.strip()[-300:]}"
        )
    )
    accepted_after = sum(a.status == 201 for a in after)
    print(f"   accepted that began after the halt returned: {accepted_after} of {len(after)}")
    print(
        f"   5xx answers: {five_xx}   no answer: {sum(1 for s in statuses if not isinstance(s, int))}"
        f" (the kernel's listen-queue overflows meanwhile: {overflows})"
    )
    print(
        f"   app connections (pg_stat_activity): peak {max(run.connections)}, samples {len(run.connections)}"
    )
    for error in errors:
        print(f"   e.g. {error}")


def listen_overflows() -> int:
    """Connections the kernel dropped because a server's accept queue was full (runserver's
    holds 10): the client sees a connection closed without an answer."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        if header.startswith("TcpExt:"):
            return int(values.split()[header.split().index("ListenOverflows")])
    return 0


def halter(rounds: int) -> None:
    """Child process: halt and resume ROUNDS times, one JSON line of halt latency each."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "investiq.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from ops.trading import service

    actor = service.Actor.system("bench", service.HALT, service.RESUME)
    for number in range(rounds):
        time.sleep(0.1)
        started = time.monotonic()
        service.halt("global", reason=f"bench round {number}", actor=actor)
        halted = time.monotonic()
        time.sleep(0.1)
        service.resume("global", reason=f"bench round {number}", actor=actor)
        print(json.dumps({"halt_ms": (halted - started) * 1000}), flush=True)


def latency(clients: int, rounds: int, pool: dict[str, str]) -> None:
    run = Run()
    with fresh_database("investiq_bench_saturation") as db, tempfile.TemporaryDirectory() as tmp:
        env = {**COMMON_ENV, **pool, "INVESTIQ_VAR_DIR": f"{tmp}/var"}
        add_api_token(db, TOKEN)
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=sample_connections, args=(db, run, stop_sampling))
        with server("gthread", db, env, Path(tmp)) as base:
            sampler.start()
            with posting_trades(base, TOKEN, clients, run.answers, "latency"):
                time.sleep(1)
                halting = subprocess.run(
                    [sys.executable, __file__, "--halter", str(rounds)],
                    cwd=ROOT,
                    env={**os.environ, **env, "DATABASE_URL": db},
                    capture_output=True,
                    text=True,
                    check=True,
                )
            stop_sampling.set()
            sampler.join()
    halts = sorted(json.loads(line)["halt_ms"] for line in halting.stdout.splitlines())
    q = statistics.quantiles(halts, n=100, method="inclusive")
    statuses = [answer.status for answer in run.answers]
    print(f"\n== halt latency under {clients} clients (gunicorn gthread), {len(halts)} halts")
    print(f"   p50 {q[49]:.1f} ms   p99 {q[98]:.1f} ms   max {halts[-1]:.1f} ms")
    print("   answers: " + ", ".join(f"{s}: {statuses.count(s)}" for s in sorted(set(statuses), key=str)))
    print(f"   app connections: peak {max(run.connections)}")


def throughput(rounds: int, seconds: int) -> None:
    with fresh_database("investiq_bench_saturation") as db, tempfile.TemporaryDirectory() as tmp:
        add_api_token(db, TOKEN)
        script = Path(tmp, "orders.lua")
        script.write_text(WRK_TRADES_SCRIPT)
        headers = ("-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json")
        env = {**COMMON_ENV, "INVESTIQ_VAR_DIR": f"{tmp}/var"}
        with (
            gunicorn(db, workers=1, DB_POOL_SIZE="4", **env) as pooled,
            gunicorn(db, workers=1, DB_POOL_SIZE="0", **env) as unpooled,
        ):
            urls = {"pool": pooled, "no pool": unpooled}

            def measure(name: str, round_: int) -> float:
                return wrk(
                    urls[name] + "/api/v1/trades",
                    seconds,
                    "-s",
                    str(script),
                    *headers,
                    script_args=(f"r{round_}-{name.replace(' ', '')}",),
                )

            for name in urls:
                measure(name, -1)  # warm
            ratio = side_by_side(measure, "pool", "no pool", rounds)
    print(f"ratio pool / no pool = {ratio:.3f} (median of rounds)   (target >= 0.95)")


def serve(database: str, requests_: int) -> None:
    """Child process (under callgrind): answer `requests_` trades in-process, as gunicorn's
    sync worker would, on this process's settings (DB_POOL_SIZE from the environment)."""
    import io

    os.environ.update(COMMON_ENV, DATABASE_URL=database, DJANGO_SETTINGS_MODULE="investiq.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    handler = WSGIHandler()
    statuses: list[str] = []
    run = f"{os.getpid()}-{os.environ.get('DB_POOL_SIZE')}"
    for n in range(20 + requests_):  # 20 to warm caches, the pool and the metric children
        body = json.dumps({**ORDER, "client_order_id": f"cg-{run}-{n}"}).encode()
        headers = {"Authorization": f"Bearer {TOKEN}", "Host": "127.0.0.1"}
        environ = RequestFactory().post(
            "/api/v1/trades", body, content_type="application/json", headers=headers
        )
        wsgi = {**environ.environ, "wsgi.input": io.BytesIO(body)}
        b"".join(handler(wsgi, lambda status, headers, *args: statuses.append(status)))
    assert all(status.startswith("201") for status in statuses), set(statuses)


ORDER = {"symbol": "AAPL", "side": "buy", "quantity": "1", "price": "100.5", "strategy": "momentum"}


def instructions_per_trade() -> None:
    """The web process's instructions per accepted trade, with the pool and without:
    repeatable where req/s on this shared machine is not (blind to time spent waiting on
    Postgres; both variants make the same round trips: the pool's check for Django's
    health check)."""
    with fresh_database("investiq_bench_saturation") as db:
        add_api_token(db, TOKEN)
        per_request = {}
        for name, size in (("pool", "4"), ("no pool", "0")):
            env = {**os.environ, "DB_POOL_SIZE": size}
            per_request[name] = (
                instructions(__file__, ["--serve", db, "250"], env)
                - instructions(__file__, ["--serve", db, "50"], env)
            ) / 200
            print(f"{name:>8}: {per_request[name]:>12,.0f} instructions/request (web process)")
        print(f"implied ratio pool / no pool = {per_request['no pool'] / per_request['pool']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--halt-at", type=float, default=2)
    parser.add_argument("--latency-rounds", type=int, default=40)
    parser.add_argument("--throughput-rounds", type=int, default=6)
    parser.add_argument("--throughput-seconds", type=int, default=4)
    parser.add_argument(
        "--pool-env", default="", help='JSON of extra settings, e.g. {"DB_POOL_SIZE": "0"} for "before"'
    )
    parser.add_argument(
        "--new-connections", action="store_true", help="a new TCP connection per request (no keep-alive)"
    )
    parser.add_argument("--callgrind", action="store_true", help="also count instructions per trade")
    parser.add_argument("--halter", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.halter:
        halter(args.halter)
        return
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    pool = json.loads(args.pool_env) if args.pool_env else {}
    for kind in filter(None, args.servers.split(",")):
        scenario(kind, args.clients, args.seconds, args.halt_at, pool, args.new_connections)
    if args.latency_rounds:
        latency(args.clients, args.latency_rounds, pool)
    if args.throughput_rounds:
        throughput(args.throughput_rounds, args.throughput_seconds)
    if args.callgrind:
        instructions_per_trade()


if __name__ == "__main__":
    main()
