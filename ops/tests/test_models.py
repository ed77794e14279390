"""The database itself refuses bad rows, whatever code path writes them."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from ops.api.models import ApiClient
from ops.records.models import Analysis, Trade


def make_trade(**overrides) -> Trade:
    fields = {
        "client_order_id": "c-1",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": Decimal(1),
        "price": Decimal(100),
    }
    fields.update(overrides)
    return Trade(**fields)


@pytest.mark.parametrize(
    "overrides",
    [
        {"quantity": Decimal(0)},
        {"quantity": Decimal(-5)},
        {"price": Decimal(0)},
        {"price": Decimal("-0.01")},
        {"side": "shrt"},
        {"client_order_id": ""},
        {"symbol": ""},
        {"strategy": ""},
    ],
    ids=lambda o: next(iter(o.items())).__repr__(),
)
def test_the_database_rejects_invalid_trades_saved_with_the_orm(db, overrides):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_trade(**overrides).save()
    assert not Trade.objects.exists()


def test_the_database_rejects_a_duplicate_client_order_id(db):
    make_trade().save()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_trade(symbol="MSFT").save()


@pytest.mark.parametrize(
    "overrides",
    [
        {"confidence": Decimal("1.0001")},
        {"confidence": Decimal("-0.0001")},
        {"signal": "mayb"},
        {"price": Decimal(0)},
        {"model_version": ""},
        {"symbol": ""},
    ],
)
def test_the_database_rejects_invalid_analyses_saved_with_the_orm(db, overrides):
    fields = {"symbol": "AAPL", "signal": "buy", "confidence": Decimal("0.5"), "model_version": "m1"}
    fields.update(overrides)
    with pytest.raises(IntegrityError), transaction.atomic():
        Analysis.objects.create(**fields)


def test_tokens_are_stored_only_as_hashes(db):
    client, token = ApiClient.issue("engine")
    assert token.startswith("iq_") and len(token) > 40
    client.refresh_from_db()
    assert token not in (client.token_hash, client.token_hint)
    # What is stored is the token's SHA-256, computed here independently of the model.
    assert client.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert client.token_hint == token[:10]
    assert ApiClient.objects.for_token(token) == client
    client.revoke()
    assert ApiClient.objects.for_token(token) is None


def test_a_token_look_up_reads_the_client_exactly_as_the_orm_does(db):
    # for_token() is hand-written SQL (it runs on every API request): each field must come
    # back with the ORM's type, e.g. an aware last_used_at on SQLite too, or touch() breaks.
    client, token = ApiClient.issue("engine", scopes="trades,status")
    client.touch(timezone.now())
    ApiClient.issue("other")
    found = ApiClient.objects.for_token(token)
    expected = ApiClient.objects.get(pk=client.pk)
    for field in ApiClient._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
        assert type(getattr(found, field.attname)) is type(getattr(expected, field.attname)), field.name
    assert timezone.is_aware(found.last_used_at) and not found._state.adding
    assert ApiClient.objects.for_token(token + "x") is None


def test_last_used_is_written_at_most_once_a_minute(db, django_assert_num_queries):
    client, _ = ApiClient.issue("engine")
    now = timezone.now()
    with django_assert_num_queries(1):
        client.touch(now)
    with django_assert_num_queries(0):
        client.touch(now + timezone.timedelta(seconds=30))
    with django_assert_num_queries(1):
        client.touch(now + timezone.timedelta(seconds=61))


def test_models_read_well_as_text(db):
    trade = make_trade()
    assert str(trade) == "buy 1 AAPL @ 100 (c-1)"
    assert "revoked" in str(ApiClient(name="x", is_active=False))
