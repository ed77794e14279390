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

    def install_sql(self, table: str, columns: Iterable[str], vendor: str) -> list[str]:
        """Statements that (re)create the guard of `table`, whose columns are `columns`."""
        drops = [self._drop(name, table, vendor) for name in self.trigger_names(table, vendor)]
        if vendor == "postgresql":
            arguments = ", ".join(f"'{column}'" for column in self.mutable)
            return [
                *drops,
                f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
                f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}({arguments})",
            ]
        if vendor != "sqlite":
            raise NotImplementedError(f"no append-only guard for {vendor}")
        changed = " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in columns if c not in self.mutable)
        mutable = ", ".join(self.mutable) or "nothing"
        return [
            *drops,
            f'CREATE TRIGGER "{table}_append_only_update" BEFORE UPDATE ON "{table}" WHEN {changed} '
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: only {mutable} may change after "
            "the insert'); END",
            f'CREATE TRIGGER "{table}_append_only_delete" BEFORE DELETE ON "{table}" '
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END",
        ]

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
    """Put (back) every declared guard on its table, in one transaction."""
    from django.db import transaction

    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(POSTGRES_FUNCTION)
        existing = set(connection.introspection.table_names(cursor))
        for model, rule in guarded(models):
            table = model._meta.db_table
            if table not in existing:
                continue  # its migration has not run (migrate to an earlier state)
            columns = [
                column.name for column in connection.introspection.get_table_description(cursor, table)
            ]
            for statement in rule.install_sql(table, columns, connection.vendor):
                cursor.execute(statement)


def uninstall(connection: BaseDatabaseWrapper, models: Iterable[type[Model]]) -> None:
    with connection.cursor() as cursor:
        for model, rule in guarded(models):
            for statement in rule.uninstall_sql(model._meta.db_table, connection.vendor):
                cursor.execute(statement)


def triggers_in(connection: BaseDatabaseWrapper) -> set[tuple[str, str]]:
    """(table, trigger) for every trigger the database holds (user-defined ones)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal"
            )
        else:
            cursor.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
        return set(cursor.fetchall())


def expected_guards(connection: BaseDatabaseWrapper, models: Iterable[type[Model]]) -> set[tuple[str, str]]:
    return {
        (model._meta.db_table, name)
        for model, rule in guarded(models)
        for name in rule.trigger_names(model._meta.db_table, connection.vendor)
    }
