"""The README's first command, `make run`, as a newcomer runs it: no services, no exports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from ops.tests.processes import ROOT, free_port, wait_until_ready

NEWCOMER_DROPS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "GUNICORN_BIND"}
NEWCOMER_DROPS |= {"PROMETHEUS_MULTIPROC_DIR", "INVESTIQ_REQUIRE_SERVICES", "DJANGO_SETTINGS_MODULE"}


class SilentServer:
    """Accepts connections and never answers: an ML service that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.held.append(self.sock.accept()[0])
                self.connected.set()

    def close(self) -> None:
        for conn in [*self.held, self.sock]:
            conn.close()


def make_run(port: int, var: os.PathLike, log: os.PathLike, **extra: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key not in NEWCOMER_DROPS}
    with open(log, "w") as output:
        return subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=ROOT,
            env={**env, "INVESTIQ_VAR_DIR": str(var), **extra},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C is sent to the group
        )


def ctrl_c(process: subprocess.Popen, within: float = 45) -> int:
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail("make run did not stop after Ctrl-C")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    # One `make run` for the module (it takes ~20 s to come up); the Ctrl-C test is last.
    tmp_path = tmp_path_factory.mktemp("make-run")
    port = free_port()
    log = tmp_path / "run.log"
    ml_service = SilentServer()
    # The only setting a newcomer would not have: an ML service that hangs, so the
    # Ctrl-C test can catch the worker in the middle of a probe cycle.
    process = make_run(port, tmp_path / "var", log, ML_SERVICE_URL=ml_service.url, PROBE_READ_TIMEOUT="8")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", process, within=120)
    except Exception:
        ctrl_c(process)
        pytest.fail("make run did not come up:\n" + log.read_text()[-3000:])
    yield port, process, log, tmp_path, ml_service
    if process.poll() is None:
        ctrl_c(process)
    ml_service.close()


def test_make_run_serves_the_demo_with_its_logins_and_keeps_runtime_files_in_var(running):
    port, _, log, tmp_path, _ = running
    output = log.read_text()
    assert f"http://127.0.0.1:{port}/" in output
    for username in ("demo", "alice", "bob", "carol", "vera"):
        assert f"  {username} " in output, username
    broker = tmp_path / "var" / "celery-broker"
    time.sleep(2)  # the worker has started consuming (readyz answers before it does)
    assert (broker / "control").is_dir()
    assert not (ROOT / "control").exists()
    assert (tmp_path / "var" / "secret_key").exists()


def test_a_second_make_run_on_the_same_port_refuses_and_the_first_keeps_serving(running):
    port, process, _, tmp_path, _ = running
    second = make_run(port, tmp_path / "var", tmp_path / "second.log")
    assert second.wait(timeout=120) != 0
    assert "already in use" in (tmp_path / "second.log").read_text()
    wait_until_ready(f"http://127.0.0.1:{port}/healthz", process, within=10)


def test_ctrl_c_lets_the_worker_finish_its_probe_cycle_and_stops_everything_cleanly(running):
    _, process, log, tmp_path, ml_service = running
    # Queue a cycle (beat may already have); wait until the worker is inside it.
    enqueue = "from ops.health.tasks import probe_dependencies; probe_dependencies.delay()"
    subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", "shell", "-c", enqueue],
        cwd=ROOT,
        env={
            **{key: value for key, value in os.environ.items() if key not in NEWCOMER_DROPS},
            "INVESTIQ_VAR_DIR": str(tmp_path / "var"),
        },
        check=True,
        timeout=60,
    )
    assert ml_service.connected.wait(timeout=60), "no probe reached the ML service"
    ctrl_c(process)
    output = log.read_text()
    # honcho used to SIGKILL the worker 5 s after Ctrl-C, in the middle of the cycle.
    assert "SIGKILL" not in output, output[-3000:]
    assert "Warm shutdown" in output
    # The interrupted cycle finished and recorded the hanging service as DOWN.
    assert "probe_dependencies" in output and "succeeded" in output, output[-3000:]
