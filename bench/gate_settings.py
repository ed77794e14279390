"""Settings for bench/gate_cost.py only: production's, plus one bare-insert URL.

The bare view lives in bench/gate_urls.py and is routed only when
DJANGO_SETTINGS_MODULE=bench.gate_settings, which nothing but the benchmark sets:
investiq.urls never names it, so no production server can reach it
(ops/tests/test_bench_gate.py holds that).
"""

from investiq.settings import *  # noqa: F403 - the same middleware, database and logging

ROOT_URLCONF = "bench.gate_urls"
