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


def test_the_command_halts_whatever_an_unrelated_system_check_says(transactional_db, operator, settings):
    """A configuration error elsewhere (ops.E004 here) stops most commands; never the kill
    switch. run_from_argv is the way manage.py runs a command, system checks included."""
    from ops.management.commands.trading import Command

    settings.ALERT_ACTIONS = {"SomeAlert": "not an action"}
    Command().run_from_argv(["manage.py", "trading", "halt", "--reason", "x", "--actor", "otto-operator"])
    assert state_of() == State.HALTED


def test_the_command_uses_the_kill_switch_role_only_for_itself_and_only_when_refused(
    transactional_db, operator, settings
):
    """Run in-process (a test, a shell's call_command), the command connects as the app's
    role since the server admits it, and leaves the process's settings as they were: a
    KILLSWITCH_DATABASE_URL naming another database never becomes this process's."""
    from django.db import connection

    settings.KILLSWITCH_DATABASE_URL = "postgres://ks@127.0.0.1:1/some_other_database"
    connection.close()
    before = dict(connection.settings_dict)
    call_command("trading", "halt", "--reason", "x", "--actor", "otto-operator")
    assert state_of() == State.HALTED
    assert connection.settings_dict == before


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


def test_the_command_requests_a_resume_but_approvals_need_a_login_session(
    operator, supervisor, supervisor2, two_person_resume, capsys
):
    call_command("trading", "halt", "--state", "reducing", "--reason", "x", "--actor", "otto-operator")
    call_command("trading", "resume", "--reason", "ok", "--actor", "sam-supervisor")
    request = ResumeRequest.objects.get()
    out = capsys.readouterr().out
    assert f"request #{request.pk}" in out and "admin → Resume requests" in out
    # One shell user naming a second supervisor is exactly what the rule must stop.
    with pytest.raises(CommandError, match="not taken from a shell"):
        call_command("trading", "approve", "--request", str(request.pk), "--actor", "sue-supervisor")
    assert state_of() == State.REDUCING
    request.refresh_from_db()
    assert request.status == ResumeRequest.Status.PENDING
    logged_in(supervisor2).post(
        "/admin/ops/resumerequest/", {"action": "approve_selected", "_selected_action": [request.pk]}
    )
    assert state_of() == State.ACTIVE
    assert "login session" in call_command_help()


def call_command_help() -> str:
    from ops.management.commands.trading import Command

    return " ".join(Command().create_parser("manage.py", "trading").format_help().split())


def test_command_transitions_record_the_os_login_and_host(operator, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "alice")
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    monkeypatch.setattr("socket.gethostname", lambda: "ops-box-1")
    call_command("trading", "halt", "--reason", "from the shell", "--actor", "otto-operator")
    event = TradingEvent.objects.get()
    assert event.origin == "cli alice (sudo as root)@ops-box-1"
    assert (event.actor, event.source) == ("otto-operator", "command")


def test_the_shell_origin_without_sudo_is_the_login(monkeypatch):
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: "sam")
    monkeypatch.setattr("socket.gethostname", lambda: "laptop")
    assert service.shell_origin() == "cli sam@laptop"


def test_status_shows_the_audit_trail_with_origins_and_open_requests(
    operator, supervisor, two_person_resume, capsys, monkeypatch
):
    monkeypatch.setattr("socket.gethostname", lambda: "ops-box-1")
    call_command(
        "trading", "halt", "--scope", "symbol:TSLA", "--reason", "venue halt", "--actor", "otto-operator"
    )
    service.halt("global", reason="broker down", actor=service.Actor.of(operator))
    call_command("trading", "resume", "--scope", "global", "--reason", "back", "--actor", "sam-supervisor")
    capsys.readouterr()
    call_command("trading", "status")
    out = capsys.readouterr().out
    assert "recent transitions:" in out
    assert "from admin" in out and "@ops-box-1" in out  # the admin halt and the shell halt
    assert "pending resume request" in out and "by sam-supervisor from cli " in out
    call_command("trading", "status", "--scope", "symbol:tsla")
    history = capsys.readouterr().out.split("recent transitions:")[1]
    assert "symbol:TSLA" in history and "broker down" not in history


def test_status_no_longer_lists_a_request_ended_by_a_direct_resume(operator, supervisor, settings, capsys):
    settings.TRADING_TWO_PERSON_RESUME = True
    call_command("trading", "halt", "--reason", "x", "--actor", "otto-operator")
    call_command("trading", "resume", "--reason", "ok", "--actor", "sam-supervisor")
    settings.TRADING_TWO_PERSON_RESUME = False
    call_command("trading", "resume", "--reason", "ok now", "--actor", "sam-supervisor")
    capsys.readouterr()
    call_command("trading", "status")
    assert "pending resume request" not in capsys.readouterr().out
    assert ResumeRequest.objects.get().status == ResumeRequest.Status.CANCELLED


def test_the_admin_lists_show_where_each_change_came_from(
    operator, supervisor, two_person_resume, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    monkeypatch.setattr("socket.gethostname", lambda: "ops-box-1")
    call_command("trading", "halt", "--reason", "x", "--actor", "otto-operator")
    run_action(logged_in(supervisor), "resume_selected", reason="recovered")
    viewer_client = logged_in(make_user("auditor", "ops_supervisor"))
    events = viewer_client.get("/admin/ops/tradingevent/").content.decode()
    assert "@ops-box-1" in events
    requests = viewer_client.get("/admin/ops/resumerequest/").content.decode()
    assert ">admin<" in requests and ">Pending<" in requests
    ResumeRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert ">expired<" in viewer_client.get("/admin/ops/resumerequest/").content.decode()


def test_the_command_rejects_a_bad_scope(operator):
    with pytest.raises(CommandError, match="not a scope"):
        call_command("trading", "halt", "--scope", "all", "--reason", "x", "--actor", "otto-operator")
