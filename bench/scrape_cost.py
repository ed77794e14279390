"""How much does a /metrics scrape cost with 1k trades vs 1M trades in Postgres?

Run from the README's venv, with the machine's Postgres:
    .venv/bin/python bench/scrape_cost.py [--rounds 200]
Two throwaway databases are loaded (1,000 and 1,000,000 trades), one gunicorn worker
serves each, and scrapes alternate between them so both see the same machine noise.
Target: median(1M) / median(1k) <= 1.2.
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests
from _servers import execute, fresh_database, gunicorn

LOAD = """
INSERT INTO ops_trade (client_order_id, symbol, side, quantity, price, strategy, executed_at, created_at)
SELECT 'bench-' || n, (ARRAY['AAPL','MSFT','NVDA','TSLA','SPY'])[1 + n %% 5],
       CASE WHEN n %% 2 = 0 THEN 'buy' ELSE 'sell' END, 1 + n %% 100, 100 + n %% 50,
       'default', now() - (n || ' seconds')::interval, now()
FROM generate_series(1, %s) AS n
"""


def timed_scrape(session: requests.Session, url: str) -> float:
    started = time.perf_counter()
    response = session.get(f"{url}/metrics", timeout=30)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with fresh_database("investiq_bench_1k") as small, fresh_database("investiq_bench_1m") as large:
        for url, rows in ((small, 1_000), (large, 1_000_000)):
            started = time.perf_counter()
            execute(url, LOAD, (rows,))
            execute(url, "ANALYZE ops_trade")
            print(f"loaded {rows:>9,} trades in {time.perf_counter() - started:5.1f}s")
        with gunicorn(small) as small_url, gunicorn(large) as large_url:
            session = requests.Session()
            for url in (small_url, large_url):  # warm connections and caches
                for _ in range(20):
                    timed_scrape(session, url)
            times: dict[str, list[float]] = {"1k": [], "1M": []}
            for _ in range(args.rounds):
                times["1k"].append(timed_scrape(session, small_url))
                times["1M"].append(timed_scrape(session, large_url))
    med = {key: statistics.median(values) for key, values in times.items()}
    p95 = {key: statistics.quantiles(values, n=20)[18] for key, values in times.items()}
    for key in ("1k", "1M"):
        print(
            f"/metrics with {key:>2} trades: median {med[key]:6.2f} ms  p95 {p95[key]:6.2f} ms"
            f"  ({args.rounds} scrapes)"
        )
    print(f"ratio median(1M) / median(1k) = {med['1M'] / med['1k']:.3f}   (target <= 1.2)")


if __name__ == "__main__":
    main()
