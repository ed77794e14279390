"""Append-only tables: the rule declared once, on the model, and held by the database.

An audit table's model says which columns may still change after the insert:

    class TradingEvent(models.Model):
        append_only = AppendOnly(mutable=("broker_outcome", ...))

and the database refuses every other change, and every DELETE, whatever writes it: the
ORM (a queryset's update() or delete() too), the admin, a task, a shell, raw SQL. On
Postgres one generic trigger function compares the row without its mutable columns; on
SQLite (the embedded default) two triggers per table list the other columns. A new
column is guarded from the start (Postgres) or from the next migrate (SQLite).

install() runs after every migrate (post_migrate, ops/apps.py), so a table that SQLite
rebuilt (an AlterField copies it and drops its triggers) is guarded again. TRUNCATE on
Postgres is left alone: it is a table owner's operation (the test database's flush
uses it), not a write the app makes.

No models here: this module sits below every capability.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

FUNCTION = "ops_append_only"

# One function for every guarded table; the mutable columns come as trigger arguments.
POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
DECLARE
    -- TG_ARGV is NULL, not empty, for a trigger given no arguments: every column guarded.
    mutable text[] := coalesce(TG_ARGV, '{{}}');
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '% is append-only: DELETE refused', TG_TABLE_NAME;
    END IF;
    IF (to_jsonb(NEW) - mutable) IS DISTINCT FROM (to_jsonb(OLD) - mutable) THEN
        RAISE EXCEPTION '% is append-only: only % may change after the insert',
            TG_TABLE_NAME, coalesce(nullif(array_to_string(mutable, ', '), ''), 'nothing');
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql
"""


@dataclass(frozen=True)
class AppendOnly:
    """Rows are never deleted; after the insert only the `mutable` columns may change."""

    mutable: tuple[str, ...] = ()

    def trigger_names(self, table: str, vendor: str) -> list[str]:
        if vendor == "postgresql":
            return [f"{table}_append_only"]
        return [f"{table}_append_only_update", f"{table}_append_only_delete"]

    def create_sql(self, table: str, columns: Iterable[str], vendor: str) -> dict[str, str]:
        """trigger name -> the statement that creates it, for `table` with `columns`."""
        if vendor == "postgresql":
            arguments = ", ".join(f"'{column}'" for column in self.mutable)
            return {
                f"{table}_append_only": f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON '
                f'"{table}" FOR EACH ROW EXECUTE FUNCTION {FUNCTION}({arguments})'
            }
        if vendor != "sqlite":
            raise NotImplementedError(f"no append-only guard for {vendor}")
        changed = " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in columns if c not in self.mutable)
        mutable = ", ".join(self.mutable) or "nothing"
        return {
            f"{table}_append_only_update": f'CREATE TRIGGER "{table}_append_only_update" BEFORE UPDATE ON '
            f'"{table}" WHEN {changed} BEGIN SELECT RAISE(ABORT, \'{table} is append-only: only {mutable} '
            "may change after the insert'); END",
            f"{table}_append_only_delete": f'CREATE TRIGGER "{table}_append_only_delete" BEFORE DELETE ON '
            f"\"{table}\" BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END",
        }

    def installed_as(self, vendor: str, create: str) -> object:
        """What the database reports (installed(), below) for a trigger made by `create`."""
        if vendor == "postgresql":
            return (FUNCTION, self.mutable, POSTGRES_TRIGGER_TYPE)
        return create

    def uninstall_sql(self, table: str, vendor: str) -> list[str]:
        return [self._drop(name, table, vendor) for name in self.trigger_names(table, vendor)]

    @staticmethod
    def _drop(name: str, table: str, vendor: str) -> str:
        return f'DROP TRIGGER IF EXISTS "{name}"' + (f' ON "{table}"' if vendor == "postgresql" else "")


def guarded(models: Iterable[type[Model]]) -> list[tuple[type[Model], AppendOnly]]:
    """The models among `models` that declare an append-only rule, with it."""
    return [
        (model, model.append_only)
        for model in models
        if isinstance(getattr(model, "append_only", None), AppendOnly) and not model._meta.abstract
    ]


def install(connection: BaseDatabaseWrapper, models: Iterable[type[Model]]) -> None:
    """Put every declared guard on its table, in one transaction; a guard already there as
    declared is left alone. Runs after every migrate, so it must cost nothing when nothing
    changed: a DROP TRIGGER on Postgres waits for every open read of the table (a backup,
    a long console query) and makes the kill switch's writes queue behind it."""
    from django.db import transaction

    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        postgres = connection.vendor == "postgresql"
        if postgres:
            # Never wait long for a table lock here: a failed migrate is better than a
            # kill switch queued behind it.
            cursor.execute("SET LOCAL lock_timeout = '5s'")
            cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [FUNCTION])
            if [row[0] for row in cursor.fetchall()] != [POSTGRES_FUNCTION.split("$$")[1]]:
                cursor.execute(POSTGRES_FUNCTION)
        tables = set(connection.introspection.table_names(cursor))
        present = installed(connection)
        for model, rule in guarded(models):
            table = model._meta.db_table
            if table not in tables:
                continue  # its migration has not run (migrate to an earlier state)
            columns = [
                column.name for column in connection.introspection.get_table_description(cursor, table)
            ]
            for name, create in rule.create_sql(table, columns, connection.vendor).items():
                if present.get((table, name)) == rule.installed_as(connection.vendor, create):
                    continue
                cursor.execute(AppendOnly._drop(name, table, connection.vendor))
                cursor.execute(create)


def uninstall(connection: BaseDatabaseWrapper, models: Iterable[type[Model]]) -> None:
    with connection.cursor() as cursor:
        for model, rule in guarded(models):
            for statement in rule.uninstall_sql(model._meta.db_table, connection.vendor):
                cursor.execute(statement)


# pg_trigger.tgtype of a BEFORE UPDATE OR DELETE ... FOR EACH ROW trigger: ROW 1,
# BEFORE 2, DELETE 8, UPDATE 16.
POSTGRES_TRIGGER_TYPE = 1 | 2 | 8 | 16


def installed(connection: BaseDatabaseWrapper) -> dict[tuple[str, str], object]:
    """(table, trigger) -> how it is made: on Postgres (function, arguments, type), on
    SQLite the statement that made it (which SQLite keeps as written)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT c.relname, t.tgname, p.proname, t.tgargs, t.tgtype FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
                "WHERE NOT t.tgisinternal"
            )
            return {
                (table, name): (function, tuple(bytes(args).decode().split("\0")[:-1]), kind)
                for table, name, function, args, kind in cursor.fetchall()
            }
        cursor.execute("SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'trigger'")
        return {(table, name): sql for table, name, sql in cursor.fetchall()}


def triggers_in(connection: BaseDatabaseWrapper) -> set[tuple[str, str]]:
    """(table, trigger) for every trigger the database holds (user-defined ones)."""
    return set(installed(connection))


def expected_guards(connection: BaseDatabaseWrapper, models: Iterable[type[Model]]) -> set[tuple[str, str]]:
    return {
        (model._meta.db_table, name)
        for model, rule in guarded(models)
        for name in rule.trigger_names(model._meta.db_table, connection.vendor)
    }
