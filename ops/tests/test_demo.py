from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management import call_command

from ops.models import Analysis, Trade


def snapshot() -> tuple:
    trades = list(
        Trade.objects.order_by("client_order_id").values_list(
            "client_order_id", "symbol", "side", "quantity", "price", "strategy", "executed_at"
        )
    )
    analyses = list(
        Analysis.objects.order_by("id").values_list(
            "symbol", "signal", "confidence", "model_version", "price", "analyzed_at"
        )
    )
    users = list(get_user_model().objects.values_list("username", "password", "is_staff"))
    return trades, analyses, users


def test_seed_demo_run_twice_equals_run_once(db, capsys):
    call_command("seed_demo")
    first_output = capsys.readouterr().out
    once = snapshot()
    call_command("seed_demo")
    second_output = capsys.readouterr().out
    assert snapshot() == once
    assert len(once[0]) == 180 and len(once[1]) == 120
    assert {t[1] for t in once[0]} >= {"AAPL", "MSFT", "BRK.B"}
    assert len({t[5] for t in once[0]}) >= 3
    assert "Demo login: demo / " in first_output
    assert "nothing added" in second_output and "password unchanged" in second_output


def test_the_demo_password_is_random_and_works(db, capsys):
    call_command("seed_demo")
    password = capsys.readouterr().out.split("Demo login: demo / ")[1].split()[0]
    user = get_user_model().objects.get(username="demo")
    assert user.is_staff and user.check_password(password)
    assert len(password) >= 12


def test_seed_demo_passes_the_gate_and_writes_nothing_while_halted(db):
    import pytest
    from django.core.management import CommandError

    from ops.trading import service

    service.halt("global", reason="maintenance", actor=service.Actor.system("tests", service.HALT))
    with pytest.raises(CommandError, match="pre-trade gate refused"):
        call_command("seed_demo")
    assert not Trade.objects.exists() and not Analysis.objects.exists()
