"""`manage.py check_monitoring`: is the monitoring chain configured right, and alive?

Static checks read monitoring/ and the app's own metric definitions (no server needed);
runtime checks ask Prometheus, Alertmanager, Grafana and the app. Each check returns
Results and never raises for a broken file or a service that is down: the result names
what failed instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    detail: str = ""

    def as_json(self) -> dict:
        return asdict(self)


Check = Callable[[], Iterable[Result]]


def run(checks: Iterable[tuple[str, Check]]) -> list[Result]:
    """Run each check; an unexpected exception is that check's FAIL, not a traceback."""
    results = []
    for name, check in checks:
        try:
            results.extend(check())
        except Exception as exc:
            logger.exception("check %s raised", name)
            results.append(Result(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}"))
    return results
