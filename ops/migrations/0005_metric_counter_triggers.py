"""Database triggers that count every inserted trade, analysis and trading event.

See ops.monitoring.models.MetricCounter for why the counting lives in the database.
"""

from django.db import migrations

SHARDS = 16
# counter name, table, SQL expression for the label (over NEW)
COUNTERS = [
    ("trades", "ops_trade", "NEW.side"),
    ("analyses", "ops_analysis", "NEW.signal"),
    ("trading_state_changes", "ops_tradingevent", "NEW.to_state || '|' || NEW.source"),
]


def _backfill(table: str, label: str) -> str:
    # Rows written before the triggers existed: counted once, here.
    row = label.replace("NEW.", "t.")
    return (
        f"INSERT INTO ops_metriccounter (name, label, shard, value) "
        f"SELECT %s, {row}, t.id %% {SHARDS}, COUNT(*) FROM {table} t GROUP BY {row}, t.id %% {SHARDS}"
    )


def postgres_sql(name: str, table: str, label: str) -> str:
    # Statement-level with a transition table: a 1M-row INSERT ... SELECT bumps each
    # counter row once instead of a million times. ORDER BY gives concurrent bulk
    # inserts one lock order, so they cannot deadlock on the counter rows.
    row_label = label.replace("NEW.", "n.")
    return f"""
CREATE OR REPLACE FUNCTION ops_count_{name}() RETURNS trigger AS $$
BEGIN
    INSERT INTO ops_metriccounter (name, label, shard, value)
    SELECT '{name}', {row_label}, n.id % {SHARDS}, COUNT(*) FROM new_rows n
    GROUP BY 2, 3 ORDER BY 2, 3
    ON CONFLICT (name, label, shard) DO UPDATE SET value = ops_metriccounter.value + EXCLUDED.value;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
-- next
CREATE TRIGGER ops_count_{name} AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ops_count_{name}();
"""


def sqlite_sql(name: str, table: str, label: str) -> str:
    return f"""
CREATE TRIGGER ops_count_{name} AFTER INSERT ON {table} BEGIN
    INSERT INTO ops_metriccounter (name, label, shard, value)
    VALUES ('{name}', {label}, NEW.id % {SHARDS}, 1)
    ON CONFLICT (name, label, shard) DO UPDATE SET value = value + 1;
END;
"""


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        raise RuntimeError(f"No metric counter triggers for {vendor}.")
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            # Until this migration commits, no insert may slip between a table's backfill
            # and its trigger (it would never be counted). Reads go on.
            cursor.execute(
                "LOCK TABLE " + ", ".join(table for _, table, _ in COUNTERS) + " IN SHARE ROW EXCLUSIVE MODE"
            )
        for name, table, label in COUNTERS:
            cursor.execute(_backfill(table, label), [name])
            # One statement each (CREATE TRIGGER ... END; is one statement in SQLite), so
            # the migration's transaction stays whole; executescript would commit it.
            for statement in (postgres_sql if vendor == "postgresql" else sqlite_sql)(name, table, label).split(
                "\n-- next\n"
            ):
                cursor.execute(statement)


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        for name, table, _ in COUNTERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS ops_count_{name}" + (f" ON {table}" if vendor == "postgresql" else ""))
            if vendor == "postgresql":
                cursor.execute(f"DROP FUNCTION IF EXISTS ops_count_{name}()")
        cursor.execute("DELETE FROM ops_metriccounter")


class Migration(migrations.Migration):
    dependencies = [("ops", "0004_metric_counters")]

    operations = [migrations.RunPython(install, uninstall)]
