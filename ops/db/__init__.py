"""Database connections: an outage told from a busy pool, and the kill switch's own way
in for shell commands."""

from __future__ import annotations

import environ
import psycopg
from django.conf import settings
from django.db import connection, connections


def server_refusal() -> BaseException | None:
    """Whether the database takes a new connection now: None if it does, else its error.

    For a request whose pool gave it no connection within DB_POOL_TIMEOUT (PoolTimeout):
    the pool connects in background threads and tells its waiters only that, whether
    every connection was busy (a saturated server) or the server refused them all (an
    outage). One direct connect, on that failure path only, tells them apart.
    """
    try:
        psycopg.connect(**connection.get_connection_params()).close()
    except psycopg.Error as exc:
        return exc
    return None


def use_killswitch_connection() -> None:
    """Connect this process as KILLSWITCH_DATABASE_URL's role from now on, when it is set.

    For `manage.py trading` (a one-off process, so nothing else shares its connection):
    a person stopping trading from a shell must get in even when the server admits no
    one else. Postgres keeps slots for that, but only for some roles: superusers
    (superuser_reserved_connections) and, from Postgres 16, members of
    pg_use_reserved_connections (reserved_connections). The URL names such a role; its
    statements and guards are the app's own (only the address and credentials change).
    """
    url = settings.KILLSWITCH_DATABASE_URL
    if not url:
        return
    target = environ.Env.db_url_config(url)
    connection = connections["default"]
    connection.close()
    if connection.vendor == "postgresql":
        connection.close_pool()  # built with the app role's parameters
    for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT"):
        connection.settings_dict[key] = target.get(key, "")
    # The URL's own options (sslmode, ...) too; ours (timeouts, the pool) stay.
    for key, value in target.get("OPTIONS", {}).items():
        connection.settings_dict["OPTIONS"].setdefault(key, value)
