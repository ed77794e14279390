"""Append-only tables, on both databases: whatever writes the row, only the declared
columns change after the insert and nothing is deleted (ops.guards)."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from ops.checks import missing_triggers
from ops.records.intake import TradeOrder
from ops.trading import broker, gate, service
from ops.trading.models import BrokerCancellation, FillBooking, TradingEvent

SYSTEM = service.Actor.system("tests", service.HALT)


@pytest.fixture
def audit_rows(supervisor) -> dict[type, int]:
    """One row of each append-only table."""
    service.halt("global", reason="incident", actor=SYSTEM, cancel_orders=True)
    cancellation = service.halt("global", reason="cancel too", actor=SYSTEM, cancel_orders=True).cancellation
    order = TradeOrder("fill-1", "AAPL", "buy", Decimal(1), Decimal(100), "momentum")
    trade, _ = gate.book_fill(order, actor=service.Actor.of(supervisor), reason="broker fill")
    return {
        TradingEvent: TradingEvent.objects.get().pk,
        BrokerCancellation: cancellation.pk,
        FillBooking: trade.booking.pk,
    }


def refused(write) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        write()


@pytest.mark.parametrize("model", [TradingEvent, BrokerCancellation, FillBooking])
def test_no_write_path_edits_or_deletes_an_audit_row(audit_rows, model):
    pk = audit_rows[model]
    rows = model.objects.filter(pk=pk)
    table = model._meta.db_table
    before = rows.values().get()
    refused(lambda: rows.update(actor="someone else"))
    refused(lambda: rows.update(created_at=before["created_at"].replace(year=2000)))
    refused(lambda: rows.delete())
    refused(lambda: model.objects.all().delete())
    row = rows.get()
    row.reason = "rewritten"
    refused(row.save)
    refused(row.delete)
    with connection.cursor() as cursor:
        refused(lambda: cursor.execute(f"UPDATE {table} SET reason = 'rewritten' WHERE id = %s", [pk]))
        refused(lambda: cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk]))
        refused(lambda: cursor.execute(f"UPDATE {table} SET id = id + 1000"))
    assert rows.values().get() == before


@pytest.mark.parametrize("model", [TradingEvent, BrokerCancellation])
def test_the_broker_outbox_columns_stay_writable(audit_rows, model):
    """The outcome of the cancel-all-orders call is written after the insert, once."""
    pk = audit_rows[model]
    assert model.objects.filter(pk=pk).update(broker_attempts=1) == 1
    broker._record(model, pk, "succeeded", {"cancelled": []})
    assert model.objects.get(pk=pk).broker_outcome == "succeeded"


def test_every_counter_and_guard_trigger_exists_after_migrate(db):
    assert missing_triggers(connection) == []


def test_a_dropped_trigger_is_reported_and_migrate_guards_the_table_again(transactional_db):
    """SQLite rebuilds a table to alter a column (copy, drop, rename), which drops its
    triggers, as here by hand. The check names what is gone; the next migrate's
    post_migrate puts the guard back (a counter needs its migration: see ops.W006)."""
    from django.core.management import call_command

    counters = importlib.import_module("ops.migrations.0005_metric_counter_triggers")
    name, table, label = next(c for c in counters.COUNTERS if c[1] == "ops_tradingevent")
    with connection.cursor() as cursor:
        for trigger in _triggers_of(table):
            cursor.execute(f'DROP TRIGGER "{trigger}"' + (f' ON "{table}"' if _postgres() else ""))
    try:
        missing = missing_triggers(connection)
        assert f"{table}.ops_count_{name}" in missing
        assert any(trigger.startswith(f"{table}.{table}_append_only") for trigger in missing)

        call_command("migrate", verbosity=0)
        assert missing_triggers(connection) == [f"{table}.ops_count_{name}"]
        service.halt("global", reason="x", actor=SYSTEM)
        refused(lambda: TradingEvent.objects.all().delete())
    finally:
        with connection.cursor() as cursor:
            sql = counters.postgres_sql if _postgres() else counters.sqlite_sql
            for statement in sql(name, table, label).split("\n-- next\n"):
                cursor.execute(statement)
    assert missing_triggers(connection) == []


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _triggers_of(table: str) -> list[str]:
    from ops.guards import triggers_in

    return sorted(name for t, name in triggers_in(connection) if t == table)


def test_a_migrate_that_changes_nothing_leaves_the_guards_alone(db):
    """Every migrate runs install(): with the guards in place it must not drop and
    recreate them, which on Postgres would wait for every open read of the audit tables
    (a backup) and make the kill switch's writes queue behind it."""
    from django.apps import apps
    from django.test.utils import CaptureQueriesContext

    from ops import guards

    with CaptureQueriesContext(connection) as captured:
        guards.install(connection, apps.get_app_config("ops").get_models())
    written = [
        q["sql"] for q in captured.captured_queries if q["sql"].lstrip().startswith(("DROP", "CREATE"))
    ]
    assert written == []
