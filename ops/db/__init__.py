"""Database connections: an outage told from a busy or full server, and the kill switch's
own way in for a shell."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import environ
import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection, connections

logger = logging.getLogger(__name__)

# What the server says when it takes no more connections (no SQLSTATE reaches a client
# that could not connect: psycopg has only the message).
_FULL = ("too many clients", "remaining connection slots are reserved", "too many connections")


def is_full(error: BaseException) -> bool:
    """The server refused a connection for lack of slots (max_connections reached)."""
    return getattr(error, "sqlstate", None) == "53300" or any(text in str(error) for text in _FULL)


_probe_lock = threading.Lock()
_probe: tuple[float, BaseException | None] = (float("-inf"), None)
PROBE_REUSE_SECONDS = 2.0


def server_refusal() -> BaseException | None:
    """Whether the database takes a new connection now: None if it does, else its error.

    For a request whose pool gave it no connection within DB_POOL_TIMEOUT (PoolTimeout):
    the pool connects in background threads and tells its waiters only that, whether
    every connection was busy (a saturated server) or the server refused them all (full,
    or gone). One direct connect tells them apart, made by one request at a time and its
    answer reused for a couple of seconds: so this failure path adds at most one
    connection per process beyond its pool, however many requests fail at once.
    """
    global _probe
    with _probe_lock:
        checked_at, refusal = _probe
        if time.monotonic() - checked_at < PROBE_REUSE_SECONDS:
            return refusal
        try:
            psycopg.connect(**connection.get_connection_params()).close()
            refusal = None
        except psycopg.Error as exc:
            refusal = exc
        _probe = (time.monotonic(), refusal)
        return refusal


_CONNECTION_KEYS = ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "CONN_MAX_AGE")


@contextlib.contextmanager
def killswitch_connection() -> Iterator[None]:
    """The connection for `manage.py trading`, a person stopping trading from a shell.

    One direct connection (no pool: a shell needs one, and the server's own refusal
    reaches it at once instead of a pool's timeout), as the app's role. Only when the
    server refuses it for lack of slots, and KILLSWITCH_DATABASE_URL is set, it connects
    as that URL's role instead: one Postgres lets into its reserved slots (a superuser,
    by superuser_reserved_connections; from Postgres 16 a member of
    pg_use_reserved_connections, by reserved_connections). Same database, same options:
    only the role, password, host and port change, and everything is put back after.

    A connection already open (a test, a caller's transaction) is used as it is.
    """
    default = connections["default"]
    if default.vendor != "postgresql" or default.connection is not None or default.in_atomic_block:
        yield
        return
    saved = {key: default.settings_dict[key] for key in _CONNECTION_KEYS}
    direct = {"OPTIONS": {k: v for k, v in saved["OPTIONS"].items() if k != "pool"}, "CONN_MAX_AGE": 0}
    try:
        _reconnect(default, direct)
        try:
            default.ensure_connection()
        except OperationalError as exc:
            if not (settings.KILLSWITCH_DATABASE_URL and is_full(exc)):
                raise
            logger.warning(
                "the database refuses the app's role (%s): connecting as KILLSWITCH_DATABASE_URL's", exc
            )
            _reconnect(default, killswitch_settings(saved))
            default.ensure_connection()
        yield
    finally:
        _reconnect(default, saved)


def killswitch_settings(app: dict) -> dict:
    """The connection settings of KILLSWITCH_DATABASE_URL, over the app's `app`."""
    target = environ.Env.db_url_config(settings.KILLSWITCH_DATABASE_URL)
    if target.get("NAME") and target["NAME"] != app["NAME"]:
        raise ImproperlyConfigured(
            f"KILLSWITCH_DATABASE_URL names the database {target['NAME']!r}, the app uses "
            f"{app['NAME']!r}: it must name the same one, with another role."
        )
    options = {k: v for k, v in app["OPTIONS"].items() if k != "pool"} | target.get("OPTIONS", {})
    return {key: target.get(key) or "" for key in ("USER", "PASSWORD", "HOST", "PORT")} | {
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
    }


def _reconnect(wrapper, values: dict) -> None:
    """The next query connects with these settings (a pool is built with the old ones)."""
    wrapper.close()
    if wrapper.vendor == "postgresql":
        wrapper.close_pool()
    wrapper.settings_dict.update(values)
