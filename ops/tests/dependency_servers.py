"""Local stand-ins for the probed dependencies, for the fault tests and bench/probe_cycle.py.

`HealthyApis` plays Polygon, Alpaca and the ML service on one port. `SilentServer`
accepts every TCP connection and never sends a byte: the hung dependency (an HTTP API,
Redis or Postgres all look the same to it). No Django imports here: bench/ uses them too.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# path -> healthy JSON body, one per probe (ops.health.probes)
HEALTHY_BODIES = {
    "/v1/marketstatus/now": {"market": "open", "serverTime": "2026-11-27T15:00:00-05:00"},
    "/v2/clock": {"is_open": True, "timestamp": "2026-11-27T15:00:00-05:00"},
    "/health": {"status": "ok", "model": "lstm-1.4"},
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = HEALTHY_BODIES.get(self.path)
        payload = json.dumps(body if body is not None else {"error": "not found"}).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read their own logs
        pass


class HealthyApis:
    """Polygon, Alpaca and the ML service, all answering as healthy, on 127.0.0.1."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HealthyApis:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class SilentServer:
    """Accepts every connection and never answers, until closed.

    `on_accept` runs in the accepting thread right after a connection is taken, while
    the client is certainly still waiting for its answer: a test kills a worker there,
    mid-probe, without racing a timeout. After `refuse()` new connections are closed at
    once instead (the dependency is still down, but fails fast).
    """

    def __init__(self, on_accept: Callable[[], None] | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.1)  # so the loop notices close() without a wake-up trick
        self.port: int = self._listener.getsockname()[1]
        self.connected = threading.Event()
        self._on_accept = on_accept
        self._refusing = False
        self._closed = threading.Event()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def accepted(self) -> int:
        """Connections taken and held without an answer."""
        with self._lock:
            return self._accepted

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def refuse(self) -> None:
        self._refusing = True

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing:
                conn.close()
                continue
            with self._lock:
                self._held.append(conn)
                self._accepted += 1
            self.connected.set()
            if self._on_accept:
                self._on_accept()

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for conn in self._held:
                conn.close()
