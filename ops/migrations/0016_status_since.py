import django.utils.timezone
from django.db import migrations, models


def from_checked_at(apps, schema_editor):
    # The best known bound for existing rows: the status held at least since the last check.
    DependencyStatus = apps.get_model("ops", "DependencyStatus")
    DependencyStatus.objects.update(status_since=models.F("checked_at"))


class Migration(migrations.Migration):
    dependencies = [("ops", "0015_monitoring_heartbeat")]

    operations = [
        migrations.AddField(
            model_name="dependencystatus",
            name="status_since",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.RunPython(from_checked_at, migrations.RunPython.noop),
    ]
