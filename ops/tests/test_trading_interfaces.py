"""The kill switch through each interface a person uses: admin, shell command, banner."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from ops.tests.conftest import make_user
from ops.trading import service
from ops.trading.models import ResumeRequest, State, TradingEvent, TradingState

CHANGELIST = "/admin/ops/tradingstate/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def state_of(scope: str = "global") -> str:
    return TradingState.objects.get(scope=scope).state


def global_pk() -> int:
    return TradingState.objects.get(scope="global").pk


def run_action(client: Client, action: str, reason: str | None, pks: list[int] | None = None):
    data = {"action": action, "_selected_action": pks or [global_pk()]}
    if reason is not None:
        data.update(apply="1", reason=reason)
    return client.post(CHANGELIST, data, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- admin ------------------------------------------------------------------------------


def test_the_admin_halt_action_asks_for_a_reason_first(operator):
    client = logged_in(operator)
    page = run_action(client, "halt_selected", reason=None)
    assert page.status_code == 200
    assert b"give the reason" in page.content and b'name="reason"' in page.content
    assert state_of() == State.ACTIVE  # nothing happened yet
    done = run_action(client, "halt_selected", reason="broker down")
    assert state_of() == State.HALTED
    assert any("ACTIVE → HALTED" in m for m in messages_of(done))
    assert TradingEvent.objects.get().actor == "otto-operator"


def test_an_empty_reason_changes_nothing(operator):
    page = run_action(logged_in(operator), "halt_selected", reason="   ")
    assert page.status_code == 200 and b"This field is required" in page.content
    assert state_of() == State.ACTIVE


def test_a_viewer_cannot_halt_in_the_admin(viewer):
    response = run_action(logged_in(viewer), "halt_selected", reason="x")
    assert state_of() == State.ACTIVE
    assert any("halt_trading" in m for m in messages_of(response))


def test_an_operator_cannot_resume_in_the_admin(operator, one_person_resume):
    client = logged_in(operator)
    run_action(client, "halt_selected", reason="x")
    response = run_action(client, "resume_selected", reason="fine")
    assert state_of() == State.HALTED
    assert any("resume_trading" in m for m in messages_of(response))


def test_a_supervisor_resumes_in_the_admin(operator, supervisor, one_person_resume):
    run_action(logged_in(operator), "halt_selected", reason="x")
    run_action(logged_in(supervisor), "resume_selected", reason="recovered")
    assert state_of() == State.ACTIVE


def test_two_person_resume_in_the_admin(operator, supervisor, supervisor2, two_person_resume):
    run_action(logged_in(operator), "halt_selected", reason="x")
    response = run_action(logged_in(supervisor), "resume_selected", reason="recovered")
    assert state_of() == State.HALTED
    assert any("must approve" in m for m in messages_of(response))
    request = ResumeRequest.objects.get()
    own = logged_in(supervisor).post(
        "/admin/ops/resumerequest/",
        {"action": "approve_selected", "_selected_action": [request.pk]},
        follow=True,
    )
    assert state_of() == State.HALTED
    assert any("different person" in m for m in messages_of(own))
    logged_in(supervisor2).post(
        "/admin/ops/resumerequest/", {"action": "approve_selected", "_selected_action": [request.pk]}
    )
    assert state_of() == State.ACTIVE


def test_the_admin_halts_a_new_scope_from_its_form(operator):
    client = logged_in(operator)
    response = client.post(
        "/admin/ops/tradingstate/halt/",
        {"scope": "strategy:pairs", "state": "REDUCING", "reason": "drawdown"},
    )
    assert response.status_code == 302
    assert state_of("strategy:pairs") == State.REDUCING
    bad = client.post(
        "/admin/ops/tradingstate/halt/", {"scope": "nonsense", "state": "HALTED", "reason": "x"}
    )
    assert bad.status_code == 200 and b"is not a scope" in bad.content


def test_the_audit_log_is_read_only_in_the_admin(operator):
    service.halt("global", reason="x", actor=service.Actor.of(operator))
    client = logged_in(make_user("admin", "ops_supervisor", superuser=True))
    event = TradingEvent.objects.get()
    assert client.get(f"/admin/ops/tradingevent/{event.pk}/change/").status_code == 200
    client.post(f"/admin/ops/tradingevent/{event.pk}/change/", {"reason": "rewritten"})
    assert client.get(f"/admin/ops/tradingevent/{event.pk}/delete/").status_code == 403
    assert client.get("/admin/ops/tradingevent/add/").status_code == 403
    event.refresh_from_db()
    assert event.reason == "x"


# --- banner ----------------------------------------------------------------------------


def test_every_staff_page_shows_a_banner_while_any_scope_is_not_active(viewer):
    client = logged_in(viewer)
    assert b"trading-banner" not in client.get("/admin/").content
    service.halt(
        "symbol:TSLA",
        reason="halted at venue",
        actor=service.Actor.system("t", service.HALT),
        to_state=State.REDUCING,
    )
    for url in ("/admin/", "/admin/ops/trade/", "/admin/password_change/"):
        content = client.get(url).content.decode()
        assert "TRADING REDUCING — symbol:TSLA" in content and "halted at venue" in content, url


# --- management command ----------------------------------------------------------------


def test_the_command_halts_and_reports_status(operator, capsys):
    call_command(
        "trading", "halt", "--scope", "global", "--reason", "from the shell", "--actor", "otto-operator"
    )
    assert state_of() == State.HALTED and TradingEvent.objects.get().source == "command"
    call_command("trading", "status")
    assert "HALTED" in capsys.readouterr().out


def test_the_command_needs_an_actor_with_the_permission(viewer):
    with pytest.raises(CommandError, match="--actor"):
        call_command("trading", "halt", "--reason", "x")
    with pytest.raises(CommandError, match="halt_trading"):
        call_command("trading", "halt", "--reason", "x", "--actor", "vera-viewer")
    assert state_of() == State.ACTIVE


def test_an_operator_cannot_resume_from_the_command(operator, one_person_resume):
    call_command("trading", "halt", "--reason", "x", "--actor", "otto-operator")
    with pytest.raises(CommandError, match="resume_trading"):
        call_command("trading", "resume", "--reason", "y", "--actor", "otto-operator")


def test_the_command_resumes_with_two_people(operator, supervisor, supervisor2, two_person_resume, capsys):
    call_command("trading", "halt", "--state", "reducing", "--reason", "x", "--actor", "otto-operator")
    call_command("trading", "resume", "--reason", "ok", "--actor", "sam-supervisor")
    request = ResumeRequest.objects.get()
    assert f"request #{request.pk}" in capsys.readouterr().out
    with pytest.raises(CommandError, match="different person"):
        call_command("trading", "approve", "--request", str(request.pk), "--actor", "sam-supervisor")
    call_command("trading", "approve", "--request", str(request.pk), "--actor", "sue-supervisor")
    assert state_of() == State.ACTIVE


def test_the_command_rejects_a_bad_scope(operator):
    with pytest.raises(CommandError, match="not a scope"):
        call_command("trading", "halt", "--scope", "all", "--reason", "x", "--actor", "otto-operator")
