"""Runs every probe at once, times each, and never lets one hang the cycle."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connections
from django.utils import timezone

from ops.health.exceptions import DependencyUnavailable, NotConfigured
from ops.health.models import Health

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    name: str
    status: str
    latency_ms: float
    detail: str
    checked_at: datetime

    @property
    def healthy(self) -> bool:
        return self.status == Health.UP


def cycle_deadline() -> float:
    """Seconds the cycle waits for its probes: the read timeout and a 5% margin.

    A dependency that accepts the connection and never answers ends its own probe at
    the read timeout, and the margin lets that probe's own result (its exact words) in.
    A probe its client's timeouts cannot end (libpq's connect timeout is whole seconds
    and at least 2, a server that trickles a byte at a time) is cut here, so one hanging
    dependency costs about one read timeout: never connect + read, never the sum.
    A probe that spent its connect timeout is not owed a full read timeout after it:
    a dependency that has not answered within the read timeout is down either way.
    """
    return settings.PROBE_READ_TIMEOUT * 1.05


def task_time_limits(interval: int) -> tuple[int, int]:
    """(hard, soft) time limits of the periodic probe task, in seconds.

    The hard limit is the interval, so a stuck cycle is killed before the next one
    starts; the soft one fires 2 s earlier so the task can still record what it has.
    ops.checks holds cycle_deadline() against the soft limit.
    """
    return interval, max(interval - 2, 1)


def run_probes(probes) -> list[ProbeResult]:
    pool = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="probe")
    futures = {pool.submit(_timed, probe): probe for probe in probes}
    deadline = cycle_deadline()
    done, _ = wait(futures, timeout=deadline)
    # Never wait for a straggler: its own timeouts end it later, and its result is
    # replaced by a timeout result now.
    pool.shutdown(wait=False, cancel_futures=True)
    results = []
    for future, probe in futures.items():
        if future in done:
            results.append(future.result())
        else:
            results.append(
                # The words an HTTP probe's own read timeout uses: whichever of the two
                # ends a hung probe first, the result reads the same.
                ProbeResult(
                    probe.name,
                    Health.DOWN,
                    deadline * 1000,
                    f"no answer within {settings.PROBE_READ_TIMEOUT:g}s",
                    timezone.now(),
                )
            )
    return results


def _timed(probe) -> ProbeResult:
    started = time.perf_counter()
    try:
        detail, status = probe.run(), Health.UP
    except NotConfigured as exc:
        detail, status = str(exc), Health.NOT_CONFIGURED
    except DependencyUnavailable as exc:
        detail, status = str(exc), Health.DOWN
    except Exception as exc:
        # A bug or an unforeseen failure: unhealthy, with the type, and a traceback in the log.
        logger.exception("probe %s raised", probe.name)
        detail, status = f"{type(exc).__name__}: {exc}", Health.DOWN
    finally:
        connections.close_all()  # this thread's database connection, if it opened one
    return ProbeResult(
        probe.name, status, (time.perf_counter() - started) * 1000, detail[:1000], timezone.now()
    )
