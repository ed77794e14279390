"""The project's settings with other SQLite OPTIONS, for bench/halt_race.py's comparisons.

DJANGO_SETTINGS_MODULE=bench._sqlite_variants with BENCH_SQLITE_VARIANT set to:
- "before": the options main had before issue 12 (deferred transactions, rollback
  journal, 20 s busy timeout), to show what the WAL + IMMEDIATE settings fix;
- "synchronous-normal": today's options with synchronous=NORMAL instead of FULL, to
  show what the synced commit costs.
"""

import os

from investiq.settings import *  # noqa: F403
from investiq.settings import DATABASES

_variant = os.environ["BENCH_SQLITE_VARIANT"]
if _variant == "before":
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
elif _variant == "synchronous-normal":
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
else:
    raise ValueError(f"BENCH_SQLITE_VARIANT={_variant!r}: use before or synchronous-normal")
