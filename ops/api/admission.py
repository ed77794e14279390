"""The trading engine's share of this process's database connections.

A process holds at most DB_POOL_SIZE connections (the psycopg pool, investiq/settings.py).
The engine's traffic (trades, analyses, status and alert reads) may hold at most
DB_POOL_SIZE - DB_POOL_RESERVE of them at once; the rest stay free for people (the
console, the admin), Alertmanager's webhook (whose alert actions halt) and the kill
switch, however many requests the engine sends. Without this, one threaded process
(runserver, gunicorn gthread) saturated by orders would make a console halt queue behind
them for a connection.

Each engine request takes a slot before its first query and gives it back only after its
connection is back in the pool, so the engine never holds more connections than slots.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import connection


class EngineSaturated(Exception):
    """No connection slot for engine traffic came free within DB_POOL_TIMEOUT."""


_lock = threading.Lock()
# By their number: one semaphore per process as configured (a test may change the setting).
_slots: dict[int, threading.BoundedSemaphore] = {}


def _engine_slots() -> threading.BoundedSemaphore | None:
    """This process's slots, or None without a pool (SQLite, DB_POOL_SIZE=0)."""
    if not settings.DATABASES["default"].get("OPTIONS", {}).get("pool"):
        return None
    count = max(1, settings.DB_POOL_SIZE - settings.DB_POOL_RESERVE)
    slots = _slots.get(count)
    if slots is None:
        with _lock:
            slots = _slots.setdefault(count, threading.BoundedSemaphore(count))
    return slots


@contextlib.contextmanager
def engine_slot() -> Iterator[None]:
    """Hold one of the engine's slots for the block; raises EngineSaturated."""
    slots = _engine_slots()
    if slots is None:
        yield
        return
    if not slots.acquire(timeout=settings.DB_POOL_TIMEOUT):
        raise EngineSaturated(
            f"no database connection for engine traffic within {settings.DB_POOL_TIMEOUT:g} s"
        )
    try:
        yield
    finally:
        try:
            # Back to the pool now, not at the end of the response: the next engine request
            # may take this slot at once, and must not find the connection still out.
            if not connection.in_atomic_block:
                connection.close()
        finally:
            slots.release()
