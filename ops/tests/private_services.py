"""A private Postgres cluster and a private Redis server that a test may stop and start.

The machine's shared Postgres (5432) and Redis (6379) serve other test runs at the same
time: a fault test never stops those, it starts its own on free ports and stops those.

No Django imports here (like processes.py): bench/ scripts may use these too.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ops.tests.processes import free_port, stop_process

# Postgres refuses to run as root; as root the cluster belongs to this account.
POSTGRES_ACCOUNT = "postgres"


class ServiceUnavailable(Exception):
    """The binaries (or the account to run them as) are missing on this machine."""


def postgres_bin_dir() -> Path:
    """Where initdb and pg_ctl are: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    raise ServiceUnavailable("no pg_ctl/initdb on PATH or under /usr/lib/postgresql/*/bin")


def redis_server_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceUnavailable("no redis-server on PATH")
    return found


def _as_cluster_owner(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    try:
        pwd.getpwnam(POSTGRES_ACCOUNT)
    except KeyError:
        raise ServiceUnavailable(f"running as root and there is no {POSTGRES_ACCOUNT!r} account") from None
    return ["runuser", "-u", POSTGRES_ACCOUNT, "--", *args]


class PrivatePostgres:
    """One throw-away cluster: trust auth, one listen address (the loopback unless told),
    no durability (fsync off).

    The data directory is a private temporary folder rather than a pytest tmp dir: as
    root the cluster runs as the postgres account, which cannot enter pytest's
    root-only (0700) base folder. remove() deletes it.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", prefix: tuple[str, ...] = (), max_connections: int = 40
    ) -> None:
        """`host`: the one address it listens on; `prefix`: a command every pg_ctl/initdb
        call runs under, e.g. ("ip", "netns", "exec", NAME) for a cluster in a network
        namespace of its own (ops/tests/test_partition.py)."""
        self.bin = postgres_bin_dir()
        self.max_connections = max_connections
        self.host = host
        self.prefix = prefix
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="investiq-private-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, user=POSTGRES_ACCOUNT)
        try:
            self._run(
                self.bin / "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        if host != "127.0.0.1":
            # initdb trusts the loopback only; the clients of another address are on its
            # own subnet (the other end of a test's veth pair).
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet trust\n")

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.prefix, *_as_cluster_owner([str(arg) for arg in args])],
            capture_output=True,
            text=True,
            timeout=120,  # only so a wedged pg_ctl cannot hang the suite
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))} failed: {result.stdout}{result.stderr}")
        return result

    def start(self) -> None:
        """Start and wait until it accepts connections (pg_ctl -w), on the same port each time."""
        options = " ".join(
            [
                f"-c listen_addresses={self.host}",
                f"-p {self.port}",
                # The socket in our own folder: never next to the shared server's in /run.
                f"-c unix_socket_directories={self.root}",
                # Throw-away data: no flushes to disk. A crash of the server process (not of
                # the machine) still loses nothing, which is what the fault tests need. Not
                # synchronous_commit=off: that acknowledges commits still in shared WAL
                # buffers, which an immediate stop loses (a fault test saw it do so).
                "-c fsync=off",
                "-c full_page_writes=off",
                f"-c max_connections={self.max_connections}",
                "-c shared_buffers=16MB",
            ]
        )
        result = self._run(
            self.bin / "pg_ctl",
            "-D",
            self.data,
            "-l",
            self.log,
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stdout}{result.stderr}\n{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """fast: sessions are terminated and open transactions roll back (an orderly outage);
        immediate: every process quits at once, like a crash, recovered from WAL at start."""
        result = self._run(
            self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", check=False
        )
        if result.returncode != 0 and self.running():
            raise RuntimeError(f"pg_ctl stop failed: {result.stdout}{result.stderr}")

    def running(self) -> bool:
        return self._run(self.bin / "pg_ctl", "-D", self.data, "status", check=False).returncode == 0

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgres://{user}@{self.host}:{self.port}/{database}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def remove(self) -> None:
        try:
            if self.data.exists() and self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server on a free loopback port, nothing kept on disk."""

    def __init__(self, folder: Path) -> None:
        self.binary = redis_server_bin()
        self.port = free_port()
        self.folder = folder
        self.log = folder / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (on the same port each time) and wait until it answers PING."""
        import redis

        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + 30  # only against a hang
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start: {self.log_tail()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
