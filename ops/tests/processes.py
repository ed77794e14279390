"""Starting, waiting for and stopping the real processes that tests and benchmarks use.

No Django imports here: bench/ scripts use this module too, outside any Django setup.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port on the loopback that nothing listens on now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(args: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen:
    """`python -m <args>` in the project, in its own process group, output to `log`
    (or discarded), so stop_process can end it and everything it forked."""
    output = log.open("w") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log:
            output.close()


def stop_process(process: subprocess.Popen) -> None:
    """Stop a process started by start_process, and everything it forked."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class NotReady(Exception):
    pass


def wait_until_ready(
    url: str, process: subprocess.Popen | None = None, *, within: float = 60.0, expect: int = 200
) -> None:
    """Poll `url` until it answers `expect`, or raise NotReady.

    Any failure to get an answer counts as "not yet": a refused connection while the
    server binds, and also a read timeout, because a fresh worker's first request
    imports the whole project and took ~1 s on a loaded CI machine. Each try may take
    up to 5 s; the whole wait ends early if the process has exited.
    """
    deadline = time.monotonic() + within
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NotReady(f"the process exited with {process.returncode} before {url} answered")
        try:
            status = requests.get(url, timeout=5).status_code
            if status == expect:
                return
            last = f"HTTP {status}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    raise NotReady(f"{url} did not answer {expect} within {within:g}s (last: {last})")


def log_in(url: str, username: str, password: str, *, next_path: str = "/") -> requests.Session:
    """A session logged in through the admin's login form, as a person's browser would.

    Raises NotLoggedIn unless the form answers with the redirect to `next_path`.
    """
    session = requests.Session()
    login = f"{url}/admin/login/"
    session.get(login, params={"next": next_path}, timeout=30).raise_for_status()
    answer = session.post(
        login,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": next_path,
        },
        headers={"Referer": login},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302 or answer.headers.get("Location") != next_path:
        raise NotLoggedIn(f"login of {username} at {url}: HTTP {answer.status_code}\n{answer.text[:2000]}")
    return session


class NotLoggedIn(Exception):
    pass
