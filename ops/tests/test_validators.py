"""Symbols and strategies: one pattern, enforced by the models, the database and the API."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from ops.monitoring.models import MetricCounter
from ops.records.models import Analysis, Position, Trade
from ops.tests.conftest import latest_migrations, migrate_schema
from ops.trading.scopes import InvalidScope, parse_scope

BEFORE = [("ops", "0007_review_fixes")]
AFTER = [("ops", "0008_symbol_validation")]


def trade(**overrides) -> Trade:
    fields = {"client_order_id": "o-1", "symbol": "AAPL", "side": "buy", "quantity": 1, "price": 1}
    return Trade(**{**fields, **overrides})


def analysis(**overrides) -> Analysis:
    fields = {"symbol": "AAPL", "signal": "buy", "confidence": Decimal("0.5"), "model_version": "m-1"}
    return Analysis(**{**fields, **overrides})


def position(**overrides) -> Position:
    return Position(**{"strategy": "default", "symbol": "AAPL", **overrides})


ROWS: dict[str, tuple[Callable[..., object], str, str]] = {
    # row factory, field, a value the API would refuse
    "trade-symbol": (trade, "symbol", "aapl"),
    "trade-symbol-newline": (trade, "symbol", "AAPL\n"),
    "trade-symbol-digit": (trade, "symbol", "AAPL1"),
    "trade-strategy": (trade, "strategy", "my strategy"),
    "analysis-symbol": (analysis, "symbol", "aapl"),
    "position-symbol": (position, "symbol", "aapl"),
    "position-strategy": (position, "strategy", "no/slash"),
}


@pytest.mark.parametrize("row", ROWS)
def test_the_model_refuses_what_the_api_refuses_with_a_field_error(db, row):
    make, field, value = ROWS[row]
    with pytest.raises(ValidationError) as caught:
        make(**{field: value}).full_clean()
    assert field in caught.value.message_dict


@pytest.mark.parametrize("row", ROWS)
def test_the_database_refuses_it_from_a_raw_create(db, row):
    make, field, value = ROWS[row]
    with pytest.raises(IntegrityError), transaction.atomic():
        make(**{field: value}).save()
    assert not type(make()).objects.exists()


@pytest.mark.parametrize("row", ["trade-symbol", "analysis-symbol", "position-symbol"])
def test_the_database_refuses_it_from_a_bulk_create(db, row):
    make, field, value = ROWS[row]
    model = type(make())
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.bulk_create([make(**{field: value})])


def test_valid_symbols_and_strategies_are_accepted_everywhere(db):
    trade(symbol="BRK.B", strategy="mean-rev_2.1").full_clean()
    trade(symbol="BRK.B", strategy="mean-rev_2.1").save()
    analysis(symbol="BRK.B").save()
    position(symbol="BRK.B", strategy="mean-rev_2.1").save()
    assert parse_scope("symbol:brk.b") == "symbol:BRK.B"
    assert parse_scope("strategy:mean-rev_2.1") == "strategy:mean-rev_2.1"


def test_the_scope_parser_refuses_what_the_models_refuse():
    with pytest.raises(InvalidScope):
        parse_scope("symbol:AAPL1")
    with pytest.raises(InvalidScope):
        parse_scope("strategy:my strategy")


def test_the_admin_refuses_a_lower_case_symbol_with_a_field_error(admin_client_logged_in):
    response = admin_client_logged_in.post(
        "/admin/ops/trade/add/",
        {
            "client_order_id": "phone-2",
            "symbol": "aapl",
            "side": "buy",
            "quantity": "1",
            "price": "100",
            "strategy": "default",
            "executed_at_0": "2026-11-27",
            "executed_at_1": "15:00:00",
        },
    )
    assert response.status_code == 200
    assert "symbol" in response.context["adminform"].form.errors
    assert not Trade.objects.exists()
    assert not Position.objects.exists()


@pytest.fixture
def migrated_back(transactional_db):
    """The schema as of 0007, with 0008 still to apply; back to the latest afterwards."""
    migrate_schema(BEFORE)
    yield MigrationExecutor(connection).loader.project_state(BEFORE).apps
    migrate_schema(latest_migrations())


def migrate_forward() -> None:
    migrate_schema(AFTER)


def test_the_migration_upper_cases_symbols_and_folds_positions(migrated_back):
    old = migrated_back
    common = {"side": "buy", "quantity": 2, "price": 1, "strategy": "default"}
    old.get_model("ops", "Trade").objects.create(client_order_id="admin-1", symbol="aapl", **common)
    old.get_model("ops", "Trade").objects.create(client_order_id="api-1", symbol="AAPL", **common)
    old.get_model("ops", "Analysis").objects.create(
        symbol="msft", signal="buy", confidence=Decimal("0.5"), model_version="m-1"
    )
    old_position = old.get_model("ops", "Position")
    old_position.objects.create(strategy="default", symbol="aapl", quantity=2)
    old_position.objects.create(strategy="default", symbol="AAPL", quantity=2)
    old_position.objects.create(strategy="default", symbol="nvda", quantity=-1)

    migrate_forward()

    assert set(Trade.objects.values_list("symbol", flat=True)) == {"AAPL"}
    assert Analysis.objects.get().symbol == "MSFT"
    assert dict(Position.objects.values_list("symbol", "quantity")) == {"AAPL": 4, "NVDA": -1}


def test_the_migration_keeps_the_insert_counters_working(migrated_back):
    # SQLite adds a CHECK by rebuilding the table, which drops the table's triggers.
    migrate_forward()
    trade(client_order_id="after-1").save()
    analysis().save()
    assert MetricCounter.objects.totals("trades") == {"buy": 1}
    assert MetricCounter.objects.totals("analyses") == {"buy": 1}


def test_the_migration_stops_on_rows_it_cannot_correct_and_names_them(migrated_back):
    bad = migrated_back.get_model("ops", "Trade").objects.create(
        client_order_id="admin-2", symbol="AAPL", side="buy", quantity=1, price=1, strategy="my strategy"
    )
    named = rf"Trade\.strategy: 1 row\(s\) such as id {bad.pk}: 'my strategy'"
    with pytest.raises(RuntimeError, match=named):
        migrate_forward()
    bad.delete()
    migrate_forward()
