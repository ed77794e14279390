"""gunicorn settings shared by the Procfile and compose.yaml."""

import os
import shutil
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# A request stuck past this is killed and logged rather than holding a worker forever.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
accesslog = "-"
errorlog = "-"

# prometheus_client multiprocess mode: every worker writes its metrics to files in
# this folder and /metrics sums them. It must be in the environment before any worker
# imports prometheus_client, i.e. here, in the master, before the fork.
_default_dir = (
    Path(os.environ.get("INVESTIQ_VAR_DIR", Path(__file__).resolve().parent / "var")) / "prometheus"
)
MULTIPROC_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_default_dir))


def on_starting(server) -> None:
    # Files from a previous run would be added to this run's counters: wipe them.
    shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)
    Path(MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker) -> None:
    # Drop the dead worker's live gauges (investiq_active_connections is livesum).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
