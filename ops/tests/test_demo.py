from __future__ import annotations

import re
import shlex
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from ops.alerts.models import Alert
from ops.demo import DEMO_USERS
from ops.health.models import DependencyStatus
from ops.records.models import Analysis, Trade
from ops.tests.processes import ROOT
from ops.trading.models import ResumeRequest, TradingState
from ops.trading.service import Actor

LOGIN_LINE = re.compile(r"^\s+(\w+)\s+(ops_\w+)\s+(\S+)$", re.MULTILINE)


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


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


def seed_and_read_logins(capsys) -> dict[str, tuple[str, str]]:
    call_command("seed_demo")
    return {name: (role, password) for name, role, password in LOGIN_LINE.findall(capsys.readouterr().out)}


def test_seed_demo_run_twice_equals_run_once(db, debug, capsys):
    logins = seed_and_read_logins(capsys)
    once = snapshot()
    call_command("seed_demo")
    second_output = capsys.readouterr().out
    assert snapshot() == once
    assert len(once[0]) == 180 and len(once[1]) == 120
    assert {t[1] for t in once[0]} >= {"AAPL", "MSFT", "BRK.B"}
    assert len({t[5] for t in once[0]}) >= 3
    assert set(logins) == set(DEMO_USERS)
    assert "nothing added" in second_output and "kept their passwords" in second_output
    assert not LOGIN_LINE.search(second_output)  # passwords are shown once


def test_every_demo_login_works_with_its_role(db, debug, capsys):
    logins = seed_and_read_logins(capsys)
    for username, (role, password) in logins.items():
        user = get_user_model().objects.get(username=username)
        assert user.is_staff and user.check_password(password), username
        assert len(password) >= 12
        assert list(user.groups.values_list("name", flat=True)) == [role] == [DEMO_USERS[username]]


def test_the_demo_has_two_supervisors_for_the_two_person_resume(db, debug, capsys):
    logins = seed_and_read_logins(capsys)
    supervisors = [name for name, (role, _) in logins.items() if role == "ops_supervisor"]
    assert len(supervisors) >= 2
    assert any(role == "ops_operator" for role, _ in logins.values())


def test_seed_demo_refuses_without_debug_and_writes_nothing(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()
    assert not Trade.objects.exists()


def test_seed_demo_with_force_seeds_without_debug(db, settings, capsys):
    settings.DEBUG = False
    call_command("seed_demo", "--force")
    assert get_user_model().objects.filter(username="demo", is_superuser=True).exists()


def readme_incident_commands() -> list[list[str]]:
    """The `manage.py trading ...` lines of the README, as a newcomer would paste them."""
    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"^\.venv/bin/python manage\.py (trading .*)$", readme, re.MULTILINE)
    return [shlex.split(line.split(" #")[0]) for line in lines]


def test_the_readme_incident_commands_run_as_written_on_the_demo(db, debug, capsys, two_person_resume):
    seed_and_read_logins(capsys)
    commands = readme_incident_commands()
    assert len(commands) >= 4
    for args in commands:
        call_command(*args)
    out = capsys.readouterr().out
    assert TradingState.objects.get(scope="global").state == "HALTED"
    assert TradingState.objects.get(scope="symbol:TSLA").state == "REDUCING"
    request = ResumeRequest.objects.get(scope="global")
    assert request.requested_by.username == "bob" and f"#{request.pk}" in out
    # The README then has carol approve it in the admin; the service accepts her.
    from ops.trading.service import approve_resume

    approve_resume(request.pk, approver=Actor.of(get_user_model().objects.get(username="carol")))
    assert TradingState.objects.get(scope="global").state == "ACTIVE"


def test_seed_demo_passes_the_gate_and_writes_nothing_while_halted(db, debug):
    from ops.trading import service

    service.halt("global", reason="maintenance", actor=service.Actor.system("tests", service.HALT))
    with pytest.raises(CommandError, match="pre-trade gate refused"):
        call_command("seed_demo")
    assert not Trade.objects.exists() and not Analysis.objects.exists()


def test_the_demo_shows_every_kind_of_console_tile_and_a_rerun_adds_none(db, debug, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    statuses = {row.effective_status() for row in DependencyStatus.objects.all()}
    assert statuses >= {"up", "down", "unknown"}
    assert sorted(Alert.objects.values_list("status", flat=True)) == ["firing", "resolved"]
    client = Client()
    client.force_login(get_user_model().objects.get(username="vera"))
    page = client.get("/").content.decode()
    assert "DependencyHealthStale" in page and "UNKNOWN (STALE)" in page and "DOWN" in page


def test_the_demo_alerts_agree_with_the_demo_tiles(db, debug):
    from ops.health.models import stale_after

    call_command("seed_demo")
    tiles = {row.name: row for row in DependencyStatus.objects.all()}
    firing = list(Alert.objects.firing())
    assert [(a.alertname, a.labels["name"]) for a in firing] == [("DependencyHealthStale", "alpaca")]
    # The rule fires 1 min after the age passed 45 s: never before the tile went stale.
    assert firing[0].starts_at >= tiles["alpaca"].checked_at + stale_after()
    polygon = tiles["polygon"]
    # Down for fewer checks than a trip needs, and for less than DependencyDown's minute.
    assert polygon.consecutive_failures < settings.AUTO_TRIP_AFTER_FAILURES
    assert polygon.checked_at - polygon.status_since < timedelta(minutes=1)
    assert TradingState.objects.get(scope="global").state == "ACTIVE"


def test_the_demo_never_overwrites_real_dependency_checks(db, debug):
    DependencyStatus.objects.create(name="database", status="up", latency_ms=1, checked_at=timezone.now())
    call_command("seed_demo")
    assert list(DependencyStatus.objects.values_list("name", flat=True)) == ["database"]
