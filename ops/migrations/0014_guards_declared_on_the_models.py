"""The append-only guards move to one declaration on each model (ops.guards), installed
after every migrate on Postgres and SQLite alike. This drops the per-table functions
that migrations 0003, 0007, 0010 and 0011 used to create on Postgres (their triggers go
with them); post_migrate puts the new guards on at the end of this same migrate."""

from django.db import migrations

LEGACY = ("ops_tradingevent_append_only", "ops_brokercancellation_append_only", "ops_fillbooking_append_only")


def drop_legacy_guards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for function in LEGACY:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")


class Migration(migrations.Migration):
    dependencies = [("ops", "0013_storable_amounts")]

    operations = [migrations.RunPython(drop_legacy_guards, migrations.RunPython.noop)]
