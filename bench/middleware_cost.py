"""CPU cost of the metrics middleware per request, in instructions (valgrind callgrind).

Run from the README's venv (needs valgrind: apt-get install valgrind):
    .venv/bin/python bench/middleware_cost.py
Wall-clock req/s on a shared 2-core VM swings by ±8% between rounds (see
metrics_overhead.py), more than the effect measured. Instruction counts do not:
callgrind counts the same total for the same run whatever else the machine does.

Each variant runs the same API view (GET /api/v1/trading/status: token check and
trading-state read, the gate's read path) through a Django WSGI handler in one
process, in prometheus_client multiprocess mode as under gunicorn, once with 50 and
once with 250 requests; the difference / 200 is the cost of one request without
start-up. Variants: no metrics middleware; only ours (ops.monitoring); only
django-prometheus's (trimmed to the dashboard families, P1); both (what runs in
production); and, side by side in the same run, both as they were before P1
(django-prometheus's two request middlewares with all eighteen families).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile

from _servers import ROOT, instructions

TOKEN = "iq_bench-token-not-secret"  # noqa: S105 - a throwaway database
OURS = ("ops.monitoring.middleware.RejectUnknownMethods", "ops.monitoring.middleware.MetricsMiddleware")
THEIRS = ("ops.monitoring.middleware.PrometheusAfterMiddleware",)
UNTRIMMED_BEFORE = "django_prometheus.middleware.PrometheusBeforeMiddleware"
UNTRIMMED_AFTER = "bench.untrimmed_middleware.PrometheusAfterMiddleware"
VARIANTS = ("none", "ours only", "django-prometheus only", "both", "both, before P1")


def middleware_for(variant: str, production: list[str]) -> list[str]:
    if variant == "both":
        return production
    if variant == "both, before P1":
        # The pre-P1 order: its Before middleware right after the method check, the
        # untrimmed After middleware where ours is.
        before = [UNTRIMMED_AFTER if m == THEIRS[0] else m for m in production]
        before.insert(before.index(OURS[0]) + 1, UNTRIMMED_BEFORE)
        return before
    drop = {"none": OURS + THEIRS, "ours only": THEIRS, "django-prometheus only": OURS}[variant]
    return [m for m in production if m not in drop]


def serve(requests: int, variant: str) -> None:
    """Child process: answer `requests` requests with the middleware of `variant`."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    from ops.api.models import ApiClient

    ApiClient.objects.get_or_create(
        name="bench",
        defaults={"token_hash": hashlib.sha256(TOKEN.encode()).hexdigest(), "token_hint": "iq_b"},
    )
    settings.MIDDLEWARE = middleware_for(variant, settings.MIDDLEWARE)
    handler = WSGIHandler()
    environ = (
        RequestFactory()
        .get(
            "/api/v1/trading/status?symbol=AAPL&strategy=momentum",
            HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
            HTTP_HOST="127.0.0.1",
        )
        .environ
    )
    statuses: list[str] = []
    for _ in range(20 + requests):  # 20 to warm caches and create the metric children
        b"".join(handler({**environ, "wsgi.input": io.BytesIO(b"")}, lambda s, h, *a: statuses.append(s)))
    assert all(status.startswith("200") for status in statuses), set(statuses)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "investiq.settings",
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "LOG_LEVEL": "ERROR",
            "METRICS_MIDDLEWARE": "true",
            # One connection for the whole run: under valgrind (~50x slower, more on a
            # busy machine) the default 60 s would reconnect a wall-clock-dependent
            # number of times per run, which is noise in a per-request count.
            "DB_CONN_MAX_AGE": "86400",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        per_request = {}
        for name in VARIANTS:
            per_request[name] = (
                instructions(__file__, ["--serve", "250", name], env)
                - instructions(__file__, ["--serve", "50", name], env)
            ) / 200
            print(f"{name:>24}: {per_request[name]:>12,.0f} instructions/request")
    base = per_request["none"]
    for name in VARIANTS[1:]:
        extra = per_request[name] - base
        print(
            f"{name:>24}: +{extra:>10,.0f} ({extra / base * 100:4.1f}%)   implied throughput ratio "
            f"{base / per_request[name]:.3f}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        main()
