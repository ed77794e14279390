"""gunicorn settings shared by the Procfile and compose.yaml."""

import os
import re
import socket
import sys
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# A request stuck past this is killed and logged rather than holding a worker forever.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
# gunicorn >= 25 opens a control socket at one path per user, shared by every instance on
# the host (a second server takes it over). We never use gunicornc: no socket at all.
control_socket_disable = True

# prometheus_client multiprocess mode: every worker writes its metrics to files in
# this folder and /metrics sums them. It must be in the environment before any worker
# imports prometheus_client: on_starting sets it, in the master, before the fork. The
# default is one folder per listen address (the one gunicorn really binds, -b included),
# so two instances on one checkout never share (or clean up) each other's files.
VAR_DIR = Path(os.environ.get("INVESTIQ_VAR_DIR", Path(__file__).resolve().parent / "var"))


def _multiproc_dir(server) -> Path:
    explicit = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if explicit:
        return Path(explicit)
    address = "+".join(
        str(item) if isinstance(item, str) else f"{item[0]}:{item[1]}" for item in server.cfg.address
    )
    return VAR_DIR / "prometheus" / re.sub(r"[^A-Za-z0-9.-]", "_", address)


# prometheus_client names its files <kind>_<pid>.db (e.g. counter_123.db, gauge_livesum_123.db).
_PID_FILE = re.compile(r"_(\d+)\.db\Z")


def _refuse_if_taken(server) -> None:
    """Stop before touching anything when another server already listens on our address.

    gunicorn itself would only give up after a few bind retries; by then a hook that
    cleans the metrics folder would already have wiped the running instance's series.
    """
    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue  # a unix socket path: gunicorn reports that one itself
        host, port = address[0], address[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # Like gunicorn's own socket: a TIME_WAIT leftover is not "taken", a listener is.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                server.log.error(
                    "%s:%s is already in use (%s): is another instance running? "
                    "Stop it, or choose another port (make run PORT=8001, GUNICORN_BIND=...).",
                    host,
                    port,
                    exc.strerror,
                )
                sys.exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def on_starting(server) -> None:
    _refuse_if_taken(server)
    if server.cfg.threads > 1:
        # A threaded worker holds its whole database pool (investiq/settings.py): the
        # connections its API traffic may not take (DB_POOL_RESERVE) are then open when a
        # person halts, even if the server has filled up since. A sync worker serves one
        # request at a time on the one connection it keeps.
        os.environ.setdefault("DB_POOL_HOLD", "true")
    folder = _multiproc_dir(server)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Files of dead processes would be added to this run's counters. Only those go:
    # never a live process's files, whoever it belongs to.
    for path in folder.glob("*.db"):
        match = _PID_FILE.search(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def post_worker_init(worker) -> None:
    if worker.cfg.threads == 1:
        return
    # Open the pool now, not at the first request: a worker just started (or respawned)
    # fills its pool in the background right away, before anyone needs the reserve.
    from django.db import connections

    try:
        pool = connections["default"].pool if connections["default"].vendor == "postgresql" else None
        if pool is not None:
            pool.open()
    except Exception as exc:  # a worker must start even if the database is down: it retries
        worker.log.warning("database pool not opened at start: %s", exc)


def child_exit(server, worker) -> None:
    # Drop the dead worker's live gauges (investiq_active_connections is livesum).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
