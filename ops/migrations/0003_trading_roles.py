"""Roles for the kill switch, the global scope row, and a database guard on the audit log."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from ops.trading.roles import ensure_roles

    ensure_roles(apps)


APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION ops_tradingevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'trading events are append-only: DELETE refused';
    END IF;
    IF (NEW.scope, NEW.from_state, NEW.to_state, NEW.reason, NEW.actor, NEW.source, NEW.approver,
        NEW.created_at) IS DISTINCT FROM
       (OLD.scope, OLD.from_state, OLD.to_state, OLD.reason, OLD.actor, OLD.source, OLD.approver,
        OLD.created_at) THEN
        RAISE EXCEPTION 'trading events are append-only: only the broker outcome may be recorded';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ops_tradingevent_append_only BEFORE UPDATE OR DELETE ON ops_tradingevent
    FOR EACH ROW EXECUTE FUNCTION ops_tradingevent_append_only();
"""
DROP_SQL = """
DROP TRIGGER IF EXISTS ops_tradingevent_append_only ON ops_tradingevent;
DROP FUNCTION IF EXISTS ops_tradingevent_append_only();
"""


def guard_audit_log(apps, schema_editor):
    # Postgres is where the records live; the SQLite laptop default relies on the model.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL)


def unguard_audit_log(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0002_trading_state"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        migrations.RunPython(guard_audit_log, unguard_audit_log),
    ]
