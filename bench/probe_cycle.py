"""P5: a probe cycle with one dependency hanging, against the probe read timeout.

Run from the README's venv, with the machine's Postgres and Redis:
    .venv/bin/python bench/probe_cycle.py [--rounds 5] [--connect-timeout 1] [--read-timeout 2]

A throwaway Postgres database records the results; Redis is only PINGed (REDIS_URL, or
the machine's Redis). A local HTTP server plays Polygon, Alpaca and the ML service, and a
TCP server accepts connections and never answers. Each round times the cycle the beat
task runs (all probes at once, then recording) once all-healthy and once with each
dependency in turn pointed at the silent server, side by side. Automatic trips are off
(a trip is a one-off, not part of a cycle's cost).
Target: cycle with one dependency hanging / PROBE_READ_TIMEOUT <= 1.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Iterator

from _servers import fresh_database

from ops.tests.dependency_servers import HealthyApis, SilentServer

HANGING = ("database", "redis", "polygon", "alpaca", "ml_service")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connect-timeout", type=float, default=1.0)
    parser.add_argument("--read-timeout", type=float, default=2.0)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    with (
        fresh_database("investiq_bench_probes") as database_url,
        HealthyApis() as apis,
        SilentServer() as silent,
    ):
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "investiq.settings",
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "SECRET_KEY": "bench",
            }
        )
        import django

        django.setup()
        from django.conf import settings

        settings.PROBE_CONNECT_TIMEOUT, settings.PROBE_READ_TIMEOUT = args.connect_timeout, args.read_timeout
        settings.AUTO_TRIPS_ENABLED = False
        healthy = healthy_settings(apis.url, redis_url)
        run = cycle_runner()
        for name in ("healthy", *HANGING):  # warm: imports, connections, the status rows
            with dependency(name, healthy, silent):
                run()
        times: dict[str, list[float]] = {name: [] for name in ("healthy", *HANGING)}
        statuses: dict[str, str] = {}
        for _ in range(args.rounds):
            for name in times:
                with dependency(name, healthy, silent):
                    elapsed, results = run()
                times[name].append(elapsed)
                if name != "healthy":
                    statuses[name] = next(f"{r.status}: {r.detail}" for r in results if r.name == name)
                elif any(not r.healthy for r in results):
                    raise SystemExit(f"the healthy cycle was not healthy: {results}")
    read = args.read_timeout
    print(
        f"probe cycle (probe + record), connect {args.connect_timeout:g}s, read {read:g}s,"
        f" {args.rounds} rounds, median of each"
    )
    print(f"{'hanging':<12} {'cycle s':>8} {'÷ read':>7}  {'per-round ÷ read':<32} the hanging one's result")
    for name, values in times.items():
        ratios = " ".join(f"{value / read:.3f}" for value in values)
        print(
            f"{name if name != 'healthy' else '(none)':<12} {statistics.median(values):8.3f}"
            f" {statistics.median(values) / read:7.3f}  {ratios:<32} {statuses.get(name, '')}"
        )
    worst = max(statistics.median(times[name]) / read for name in HANGING)
    print(f"worst cycle with one dependency hanging / read timeout = {worst:.3f}   (target <= 1.1)")


def healthy_settings(apis_url: str, redis_url: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "POLYGON_BASE_URL": apis_url,
        "POLYGON_API_KEY": "bench",
        "ALPACA_BASE_URL": apis_url,
        "ALPACA_KEY_ID": "bench",
        "ALPACA_SECRET_KEY": "bench",
        "ML_SERVICE_URL": apis_url,
    }


# Which setting points each dependency at the silent server.
HANG_BY = {
    "redis": ("REDIS_URL", "redis"),
    "polygon": ("POLYGON_BASE_URL", "http"),
    "alpaca": ("ALPACA_BASE_URL", "http"),
    "ml_service": ("ML_SERVICE_URL", "http"),
}


@contextlib.contextmanager
def dependency(hanging: str, healthy: dict[str, str], silent: SilentServer) -> Iterator[None]:
    from django.conf import settings
    from django.db import connection

    for key, value in healthy.items():
        setattr(settings, key, value)
    if hanging in HANG_BY:
        key, scheme = HANG_BY[hanging]
        setattr(settings, key, silent.url(scheme))
        yield
    elif hanging == "database":
        # The probe threads open their connections from this shared settings dict; the
        # main thread keeps its open one, so recording still reaches the real database.
        connection.ensure_connection()
        saved = connection.settings_dict["PORT"]
        connection.settings_dict["PORT"] = silent.port
        try:
            yield
        finally:
            connection.settings_dict["PORT"] = saved
    else:
        yield


def cycle_runner():
    from ops.health import service

    def run():
        started = time.perf_counter()
        results = service.check_now()  # what the beat task runs: probes, then recording
        return time.perf_counter() - started, results

    return run


if __name__ == "__main__":
    main()
