"""P3: the pre-trade gate (POST /api/v1/trades) against a bare view doing one insert.

Run from the README's venv, with the machine's Postgres (needs wrk; valgrind for
--callgrind: apt-get install wrk valgrind):
    .venv/bin/python bench/gate_cost.py [--rounds 8 --seconds 4] [--callgrind]
One throwaway database and one gunicorn worker serve both URLs with the same
middleware (settings bench.gate_settings: production's plus the bare view, which
nothing else routes). wrk posts a fresh client_order_id per request, alternating
between the two URLs round by round so both share the machine's noise. Also printed:
the SQL statements one accepted trade and one identical retry cost (BEGIN, SAVEPOINT
and COMMIT included, as CaptureQueriesContext logs them), and with --callgrind the
instructions per request in the web process (valgrind; repeatable where req/s is not,
but blind to the time spent waiting on Postgres). Targets: ratio >= 0.6, <= 6 statements.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _servers import (
    ROOT,
    WRK_TRADES_SCRIPT,
    add_api_token,
    fresh_database,
    gunicorn,
    instructions,
    side_by_side,
    wrk,
)

TOKEN = "iq_bench-token-not-secret"  # noqa: S105 - a throwaway database
GATE = "/api/v1/trades"
BARE = "/bench/bare-insert"
SETTINGS = {"DJANGO_SETTINGS_MODULE": "bench.gate_settings", "LOG_LEVEL": "ERROR"}


def order(client_order_id: str) -> bytes:
    return json.dumps(
        {
            "client_order_id": client_order_id,
            "symbol": "AAPL",
            "side": "buy",
            "quantity": "1",
            "price": "100.5",
            "strategy": "momentum",
        }
    ).encode()


def rps(url: str, seconds: int, script: str, prefix: str) -> float:
    headers = ("-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json")
    return wrk(url, seconds, "-s", script, *headers, script_args=(prefix,))


def setup_django(database: str) -> None:
    os.environ.update(SETTINGS, DATABASE_URL=database, SECRET_KEY="bench", ALLOWED_HOSTS="127.0.0.1")  # noqa: S106 - a throwaway database
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def count_statements(database: str) -> None:
    """Child process: print the statements of one accepted trade and one identical retry."""
    setup_django(database)
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(headers={"Authorization": f"Bearer {TOKEN}", "Host": "127.0.0.1"})

    def post(path: str, body: bytes, status: int) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            response = client.post(path, body, content_type="application/json")
        assert response.status_code == status, response.content
        return [query["sql"] for query in captured.captured_queries]

    post(GATE, order("count-warm"), 201)  # the position row exists, the token was touched
    for name, statements in (
        ("accepted trade (gate)", post(GATE, order("count-1"), 201)),
        ("identical retry (gate)", post(GATE, order("count-1"), 200)),
        ("bare insert", post(BARE, order("count-bare"), 201)),
    ):
        print(f"statements per {name}: {len(statements)}")
        for sql in statements:
            print(f"    {sql[:150]}")


def serve(database: str, path: str, requests: int) -> None:
    """Child process (under callgrind): answer `requests` POSTs to `path` in-process."""
    setup_django(database)
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    handler = WSGIHandler()
    statuses: list[str] = []
    run = f"{os.getpid()}-{path.strip('/').replace('/', '-')}"
    for n in range(20 + requests):  # 20 to warm caches and create the metric children
        body = order(f"cg-{run}-{n}")
        headers = {"Authorization": f"Bearer {TOKEN}", "Host": "127.0.0.1"}
        environ = RequestFactory().post(path, body, content_type="application/json", headers=headers).environ
        b"".join(handler({**environ, "wsgi.input": io.BytesIO(body)}, lambda s, h, *a: statuses.append(s)))
    assert all(status.startswith("201") for status in statuses), set(statuses)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--callgrind", action="store_true", help="also count instructions per request")
    args = parser.parse_args()

    with fresh_database("investiq_bench_gate") as db, tempfile.TemporaryDirectory() as tmp:
        add_api_token(db, TOKEN)
        subprocess.run([sys.executable, __file__, "--count", db], check=True)
        script = Path(tmp, "orders.lua")
        script.write_text(WRK_TRADES_SCRIPT)
        with gunicorn(db, workers=1, **SETTINGS) as url:
            urls = {"gate": url + GATE, "bare": url + BARE}
            for name, target in urls.items():
                rps(target, 1, str(script), f"warm-{name}")
            ratio = side_by_side(
                lambda name, round_: rps(urls[name], args.seconds, str(script), f"r{round_}-{name}"),
                "gate",
                "bare",
                args.rounds,
            )
        print(f"ratio gate / bare = {ratio:.3f} (median of rounds)   (target >= 0.6)")

        if args.callgrind:
            per_request = {}
            for name, path in (("gate", GATE), ("bare", BARE)):
                per_request[name] = (
                    instructions(__file__, ["--serve", db, path, "250"], dict(os.environ))
                    - instructions(__file__, ["--serve", db, path, "50"], dict(os.environ))
                ) / 200
                print(f"{name:>5}: {per_request[name]:>12,.0f} instructions/request (web process)")
            implied = per_request["bare"] / per_request["gate"]
            print(f"implied ratio gate / bare = {implied:.3f} (CPU of the web process only)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--count":
        count_statements(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
