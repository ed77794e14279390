"""A real Celery worker and beat on Redis keep the dependency statuses fresh."""

from __future__ import annotations

import time
import uuid

from ops.health.models import DependencyStatus
from ops.tests.conftest import celery_worker, database_url, start_process, stop_process
from ops.tests.test_metrics import scrape, value

INTERVAL = 2


def test_worker_and_beat_refresh_statuses_and_metrics(
    transactional_db, postgres, redis_url, tmp_path, settings
):
    settings.PROBE_INTERVAL_SECONDS = INTERVAL
    queue = f"probes-{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "beat-test",
        "PROBE_INTERVAL_SECONDS": str(INTERVAL),
        "PROBE_CONNECT_TIMEOUT": "0.2",
        "PROBE_READ_TIMEOUT": "0.2",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "ML_SERVICE_URL": "",
    }
    worker = start_process(celery_worker(queue), env, tmp_path / "worker.log")
    beat = start_process(
        ["celery", "-A", "investiq", "beat", "--loglevel=INFO", f"--schedule={tmp_path / 'beat-schedule'}"],
        env,
        tmp_path / "beat.log",
    )
    seen: list = []
    stamps: set[float] = set()
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and (len(seen) < 3 or len(stamps) < 2):
            row = DependencyStatus.objects.filter(name="database").first()
            if row and row.checked_at not in seen:
                seen.append(row.checked_at)
                stamps.add(
                    value(scrape(), "investiq_dependency_last_check_timestamp_seconds", name="database")
                )
            time.sleep(0.2)
    finally:
        stop_process(beat)
        stop_process(worker)
    logs = (tmp_path / "worker.log").read_text()[-3000:] + (tmp_path / "beat.log").read_text()[-2000:]
    assert len(seen) >= 3, f"status rows refreshed {len(seen)} times\n{logs}"  # first write + 2 refreshes
    assert len(stamps) >= 2, "the metric did not change between cycles"
    assert DependencyStatus.objects.get(name="database").status == "up"
    assert DependencyStatus.objects.get(name="redis").status == "up"
