"""Roles for the kill switch and the global scope row.

The audit log's append-only guard, once installed here, is declared on the model and
installed after every migrate (ops.guards); 0014 removes this migration's old one."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from ops.trading.roles import ensure_roles

    ensure_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0002_trading_state"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
