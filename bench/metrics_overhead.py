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
import hashlib
import re
import statistics
import subprocess

from _servers import execute, fresh_database, gunicorn

TOKEN = "iq_bench-token-not-secret"  # noqa: S105 - a throwaway database


def rps(url: str, seconds: int) -> float:
    # One wrk thread and one gunicorn worker each get one of the two cores, so what is
    # measured is the server, not its fight for CPU with the load generator.
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c4",
            f"-d{seconds}s",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            f"{url}/api/v1/trading/status?symbol=AAPL&strategy=momentum",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()

    with fresh_database("investiq_bench_overhead") as db:
        execute(
            db,
            "INSERT INTO ops_apiclient (name, token_hash, token_hint, is_active, created_at) "
            "VALUES ('bench', %s, 'iq_bench', true, now())",
            (hashlib.sha256(TOKEN.encode()).hexdigest(),),
        )
        with (
            gunicorn(db, workers=1) as with_url,
            gunicorn(db, workers=1, METRICS_MIDDLEWARE="false") as without_url,
        ):
            rps(with_url, 1), rps(without_url, 1)  # warm-up
            results: dict[str, list[float]] = {"with": [], "without": []}
            for round_ in range(args.rounds):
                # Alternate which goes first, so neither always gets the quieter slot.
                order = [("with", with_url), ("without", without_url)]
                for name, url in order if round_ % 2 == 0 else reversed(order):
                    results[name].append(rps(url, args.seconds))
    for name, values in results.items():
        print(
            f"{name:>7} metrics middleware: median {statistics.median(values):7.1f} req/s  "
            f"rounds {', '.join(f'{v:.0f}' for v in values)}"
        )
    # Each round's pair ran back to back under the same load, so the per-round ratio
    # cancels most of the machine's drift; its median is the figure to compare.
    ratios = [w / wo for w, wo in zip(results["with"], results["without"], strict=True)]
    print(f"per-round ratios: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"ratio with / without = {statistics.median(ratios):.3f} (median of rounds)   (target >= 0.95)")


if __name__ == "__main__":
    main()
