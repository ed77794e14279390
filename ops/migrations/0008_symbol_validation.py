"""Symbols and strategy names held to one pattern, in the models and in the database.

Before this, only the API checked them: a trade added in the admin as `aapl` made a
position under `symbol:aapl`, which no halt (always `symbol:AAPL`) matches.
"""

import importlib

import ops.validators
from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Upper

# Frozen copies of ops.validators' patterns as of this migration, like every value in a
# migration: a later change of the pattern needs its own migration.
SYMBOL = r"\A[A-Z.]{1,10}\Z"
STRATEGY = r"\A[A-Za-z0-9_.-]{1,64}\Z"

counters = importlib.import_module("ops.migrations.0005_metric_counter_triggers")


def canonicalise_symbols(apps, schema_editor):
    """Upper-case the symbols the admin let through, so the constraints can be added.

    A lower-case symbol names the same instrument as its upper-case form (the gate and
    the scope parser only ever use upper case), so this corrects how the row is spelt,
    not what it records; and it puts those trades back under the halts meant for them.
    Positions are keyed by (strategy, symbol), so `aapl` is folded into `AAPL`.
    """
    Trade = apps.get_model("ops", "Trade")
    Analysis = apps.get_model("ops", "Analysis")
    Position = apps.get_model("ops", "Position")
    for model in (Trade, Analysis):
        model.objects.exclude(symbol=Upper("symbol")).update(symbol=Upper("symbol"))
    for position in Position.objects.exclude(symbol=Upper("symbol")).order_by("id"):
        canonical = Position.objects.filter(strategy=position.strategy, symbol=position.symbol.upper())
        if canonical.update(quantity=F("quantity") + position.quantity):
            position.delete()
        else:
            Position.objects.filter(pk=position.pk).update(symbol=position.symbol.upper())


def refuse_other_invalid_rows(apps, schema_editor):
    """Anything else (a strategy with a space, a digit in a symbol) has no one right
    spelling, and trades are records: stop with the rows to fix rather than guess."""
    problems = []
    for model_name, field, pattern in (
        ("Trade", "symbol", SYMBOL),
        ("Trade", "strategy", STRATEGY),
        ("Analysis", "symbol", SYMBOL),
        ("Position", "symbol", SYMBOL),
        ("Position", "strategy", STRATEGY),
    ):
        rows = apps.get_model("ops", model_name).objects.exclude(**{f"{field}__regex": pattern})
        count = rows.count()
        if count:
            examples = ", ".join(f"id {pk}: {value!r}" for pk, value in rows.values_list("pk", field)[:5])
            problems.append(f"{model_name}.{field}: {count} row(s) such as {examples}")
    if problems:
        raise RuntimeError(
            "Rows that do not match the symbol/strategy patterns; correct them, then migrate again: "
            + "; ".join(problems)
        )


def restore_sqlite_counters(apps, schema_editor):
    """SQLite cannot add or drop a CHECK in place: Django rebuilds the table (copy, drop
    the old one, rename), and dropping a table drops its triggers, which are the trade
    and analysis counters of 0005. The copy fired no trigger, so counts stay right."""
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        for name, table, label in counters.COUNTERS:
            if table in ("ops_trade", "ops_analysis"):
                cursor.execute(f"DROP TRIGGER IF EXISTS ops_count_{name}")
                cursor.execute(counters.sqlite_sql(name, table, label))


class Migration(migrations.Migration):

    dependencies = [
        ('ops', '0007_review_fixes'),
    ]

    operations = [
        migrations.RunPython(canonicalise_symbols, migrations.RunPython.noop),
        migrations.RunPython(refuse_other_invalid_rows, migrations.RunPython.noop),
        # Reversed, the table rebuilds below drop the triggers again: put them back.
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_counters),
        migrations.RemoveConstraint(
            model_name='analysis',
            name='analysis_symbol_set',
        ),
        migrations.RemoveConstraint(
            model_name='trade',
            name='trade_symbol_set',
        ),
        migrations.RemoveConstraint(
            model_name='trade',
            name='trade_strategy_set',
        ),
        migrations.AlterField(
            model_name='analysis',
            name='symbol',
            field=models.CharField(max_length=10, validators=[ops.validators.validate_symbol]),
        ),
        migrations.AlterField(
            model_name='position',
            name='strategy',
            field=models.CharField(max_length=64, validators=[ops.validators.validate_strategy]),
        ),
        migrations.AlterField(
            model_name='position',
            name='symbol',
            field=models.CharField(max_length=10, validators=[ops.validators.validate_symbol]),
        ),
        migrations.AlterField(
            model_name='trade',
            name='strategy',
            field=models.CharField(default='default', max_length=64, validators=[ops.validators.validate_strategy]),
        ),
        migrations.AlterField(
            model_name='trade',
            name='symbol',
            field=models.CharField(max_length=10, validators=[ops.validators.validate_symbol]),
        ),
        migrations.AddConstraint(
            model_name='analysis',
            constraint=models.CheckConstraint(condition=models.Q(('symbol__regex', SYMBOL)), name='analysis_symbol_valid'),
        ),
        migrations.AddConstraint(
            model_name='position',
            constraint=models.CheckConstraint(condition=models.Q(('symbol__regex', SYMBOL)), name='position_symbol_valid'),
        ),
        migrations.AddConstraint(
            model_name='position',
            constraint=models.CheckConstraint(condition=models.Q(('strategy__regex', STRATEGY)), name='position_strategy_valid'),
        ),
        migrations.AddConstraint(
            model_name='trade',
            constraint=models.CheckConstraint(condition=models.Q(('symbol__regex', SYMBOL)), name='trade_symbol_valid'),
        ),
        migrations.AddConstraint(
            model_name='trade',
            constraint=models.CheckConstraint(condition=models.Q(('strategy__regex', STRATEGY)), name='trade_strategy_valid'),
        ),
        migrations.RunPython(restore_sqlite_counters, migrations.RunPython.noop),
    ]
