"""Django's flush, which also empties the append-only tables, on both databases.

flush removes every row by design (a table owner's reset; the test runner's teardown).
On Postgres it truncates, which the append-only guards (ops.guards) leave alone; on
SQLite it deletes row by row, which they refuse. So there the guards are lifted for
flush and put back after it, whatever happens.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.commands import flush
from django.db import DEFAULT_DB_ALIAS, connections

from ops import guards


class Command(flush.Command):
    def handle(self, **options) -> None:
        connection = connections[options.get("database") or DEFAULT_DB_ALIAS]
        if connection.vendor != "sqlite":
            super().handle(**options)
            return
        models = list(apps.get_app_config("ops").get_models())
        guards.uninstall(connection, models)
        try:
            super().handle(**options)
        finally:
            guards.install(connection, models)
