"""Requests per second on one API view with and without the metrics middleware.

Run from the README's venv (needs `wrk`: apt-get install wrk):
    .venv/bin/python bench/metrics_overhead.py [--rounds 12 --seconds 4]
Two gunicorn servers (1 worker each) on one Postgres database, one with
METRICS_MIDDLEWARE=false. wrk loads them in alternating rounds so both share the
same machine noise. The view is GET /api/v1/trading/status: token check plus the
trading-state read, the read path of the pre-trade gate. Target: with/without >= 0.95.
"""

from __future__ import annotations

import argparse

from _servers import add_api_token, fresh_database, gunicorn, side_by_side, wrk

TOKEN = "iq_bench-token-not-secret"  # noqa: S105 - a throwaway database


def rps(url: str, seconds: int) -> float:
    status = f"{url}/api/v1/trading/status?symbol=AAPL&strategy=momentum"
    return wrk(status, seconds, "-H", f"Authorization: Bearer {TOKEN}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()

    with fresh_database("investiq_bench_overhead") as db:
        add_api_token(db, TOKEN)
        with (
            gunicorn(db, workers=1) as with_url,
            gunicorn(db, workers=1, METRICS_MIDDLEWARE="false") as without_url,
        ):
            rps(with_url, 1), rps(without_url, 1)  # warm-up
            urls = {"with": with_url, "without": without_url}
            ratio = side_by_side(
                lambda name, _round: rps(urls[name], args.seconds), "with", "without", args.rounds
            )
    print(f"ratio with / without = {ratio:.3f} (median of rounds)   (target >= 0.95)")


if __name__ == "__main__":
    main()
