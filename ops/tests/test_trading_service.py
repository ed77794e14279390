"""The kill-switch service: transitions, semantics, roles and the two-person rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ops.tests.conftest import make_user
from ops.trading import service
from ops.trading.errors import (
    InvalidTransition,
    NotPermitted,
    ResumeRequestInvalid,
    TwoPersonRuleRequired,
)
from ops.trading.models import ResumeRequest, State, TradingEvent, TradingState
from ops.trading.scopes import InvalidScope

Actor = service.Actor


def state_of(scope: str) -> str:
    return TradingState.objects.get(scope=scope).state


def test_the_migration_created_the_roles_and_the_global_scope(db):
    from django.contrib.auth.models import Group

    perms = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert "halt_trading" not in perms["ops_viewer"] and "view_tradingevent" in perms["ops_viewer"]
    assert "halt_trading" in perms["ops_operator"] and "resume_trading" not in perms["ops_operator"]
    assert {"halt_trading", "resume_trading", "approve_resume"} <= perms["ops_supervisor"]
    assert state_of("global") == State.ACTIVE


def test_a_halt_changes_the_state_and_writes_one_event(operator):
    result = service.halt("global", reason="broker outage", actor=Actor.of(operator))
    assert result.changed and state_of("global") == State.HALTED
    event = TradingEvent.objects.get()
    assert (event.scope, event.from_state, event.to_state) == ("global", State.ACTIVE, State.HALTED)
    assert (event.actor, event.source, event.reason) == ("otto-operator", "manual", "broker outage")
    assert event.broker_outcome == "not_requested"


def test_halting_an_already_halted_scope_changes_nothing(operator, supervisor):
    first = service.halt("strategy:momentum", reason="runaway", actor=Actor.of(operator))
    again = service.halt("strategy:momentum", reason="clicked twice", actor=Actor.of(supervisor))
    assert not again.changed and again.event is None
    row = TradingState.objects.get(scope="strategy:momentum")
    assert (row.reason, row.changed_by, row.since) == ("runaway", "otto-operator", first.state.since)
    assert TradingEvent.objects.count() == 1


def test_reducing_can_be_tightened_to_halted_but_halt_cannot_loosen(operator):
    service.halt("symbol:AAPL", reason="gap", actor=Actor.of(operator), to_state=State.REDUCING)
    service.halt("symbol:AAPL", reason="worse", actor=Actor.of(operator))
    assert state_of("symbol:AAPL") == State.HALTED
    with pytest.raises(InvalidTransition, match="loosens"):
        service.halt("symbol:AAPL", reason="x", actor=Actor.of(operator), to_state=State.REDUCING)


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 2001])
def test_a_reason_is_required(operator, reason):
    with pytest.raises(InvalidTransition):
        service.halt("global", reason=reason, actor=Actor.of(operator))
    assert state_of("global") == State.ACTIVE and not TradingEvent.objects.exists()


@pytest.mark.parametrize(
    "scope", ["", "everything", "strategy:", "symbol:TOOLONGSYMBOL", "strategy:a b", "user:x"]
)
def test_bad_scopes_are_refused(operator, scope):
    with pytest.raises(InvalidScope):
        service.halt(scope, reason="x", actor=Actor.of(operator))
    assert not TradingEvent.objects.exists()


def test_symbol_scopes_are_canonical(operator):
    service.halt("symbol:aapl", reason="x", actor=Actor.of(operator))
    assert state_of("symbol:AAPL") == State.HALTED


@pytest.mark.parametrize("source", ["rule:broker_unreachable", "alert:CircuitBreakerTripped", "command"])
def test_sources_are_recorded(operator, source):
    service.halt("global", reason="x", actor=Actor.of(operator), source=source)
    assert TradingEvent.objects.get().source == source


def test_an_unknown_source_is_refused(operator):
    with pytest.raises(InvalidTransition):
        service.halt("global", reason="x", actor=Actor.of(operator), source="whatever")


# --- roles --------------------------------------------------------------------------


def test_a_viewer_cannot_halt(viewer):
    with pytest.raises(NotPermitted, match="halt_trading"):
        service.halt("global", reason="x", actor=Actor.of(viewer))
    assert state_of("global") == State.ACTIVE


def test_an_operator_can_halt_but_not_resume(operator, one_person_resume):
    service.halt("global", reason="x", actor=Actor.of(operator))
    with pytest.raises(NotPermitted, match="resume_trading"):
        service.resume("global", reason="ok now", actor=Actor.of(operator))
    assert state_of("global") == State.HALTED


def test_a_supervisor_can_resume(operator, supervisor, one_person_resume):
    service.halt("global", reason="x", actor=Actor.of(operator))
    result = service.resume("global", reason="broker back", actor=Actor.of(supervisor))
    assert result.changed and state_of("global") == State.ACTIVE
    assert [e.to_state for e in TradingEvent.objects.order_by("id")] == [State.HALTED, State.ACTIVE]


def test_a_superuser_without_a_role_gets_no_special_treatment(db):
    root = make_user("root", superuser=True)
    with pytest.raises(NotPermitted):
        service.halt("global", reason="x", actor=Actor.of(root))


def test_an_inactive_user_cannot_act(db):
    user = make_user("gone", "ops_supervisor")
    user.is_active = False
    with pytest.raises(NotPermitted):
        service.halt("global", reason="x", actor=Actor.of(user))


def test_a_system_actor_has_only_the_permissions_it_is_given(db):
    service.halt("global", reason="auto", actor=Actor.system("probes", service.HALT), source="rule:x")
    assert TradingEvent.objects.get().actor == "system:probes"
    with pytest.raises(NotPermitted):
        service.halt("global", reason="auto", actor=Actor.system("nobody"))


def test_resume_cannot_tighten(supervisor, one_person_resume):
    service.halt("global", reason="x", actor=Actor.of(supervisor), to_state=State.REDUCING)
    with pytest.raises(InvalidTransition):
        service.resume("global", reason="x", actor=Actor.of(supervisor), to_state=State.HALTED)


# --- two-person resume ------------------------------------------------------------------


def test_with_two_person_on_a_direct_resume_is_refused(operator, supervisor, two_person_resume):
    service.halt("global", reason="x", actor=Actor.of(operator))
    with pytest.raises(TwoPersonRuleRequired):
        service.resume("global", reason="x", actor=Actor.of(supervisor))


def test_a_second_supervisor_approves_a_resume(operator, supervisor, supervisor2, two_person_resume):
    service.halt("global", reason="outage", actor=Actor.of(operator))
    request = service.request_resume("global", reason="broker back", actor=Actor.of(supervisor))
    assert state_of("global") == State.HALTED  # nothing changes until approved
    result = service.approve_resume(request.pk, approver=Actor.of(supervisor2))
    assert state_of("global") == State.ACTIVE
    event = result.event
    assert (event.actor, event.approver, event.reason) == ("sam-supervisor", "sue-supervisor", "broker back")
    request.refresh_from_db()
    assert request.status == ResumeRequest.Status.APPROVED and request.event == event


def test_the_requester_cannot_approve_their_own_request(operator, supervisor, two_person_resume):
    service.halt("global", reason="x", actor=Actor.of(operator))
    request = service.request_resume("global", reason="y", actor=Actor.of(supervisor))
    with pytest.raises(NotPermitted, match="different person"):
        service.approve_resume(request.pk, approver=Actor.of(supervisor))
    assert state_of("global") == State.HALTED


def test_an_expired_request_cannot_be_approved(operator, supervisor, supervisor2, two_person_resume):
    service.halt("global", reason="x", actor=Actor.of(operator))
    request = service.request_resume("global", reason="y", actor=Actor.of(supervisor))
    ResumeRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ResumeRequestInvalid, match="expired"):
        service.approve_resume(request.pk, approver=Actor.of(supervisor2))
    assert state_of("global") == State.HALTED


def test_an_operator_cannot_approve(operator, supervisor, two_person_resume):
    service.halt("global", reason="x", actor=Actor.of(operator))
    request = service.request_resume("global", reason="y", actor=Actor.of(supervisor))
    with pytest.raises(NotPermitted):
        service.approve_resume(request.pk, approver=Actor.of(operator))


def test_a_newer_halt_cancels_the_scopes_open_requests(operator, supervisor, supervisor2, two_person_resume):
    service.halt("global", reason="x", actor=Actor.of(operator), to_state=State.REDUCING)
    service.halt("symbol:AAPL", reason="x", actor=Actor.of(operator))
    request = service.request_resume("global", reason="y", actor=Actor.of(supervisor))
    other = service.request_resume(
        "symbol:AAPL", reason="y", actor=Actor.of(supervisor), to_state=State.ACTIVE
    )
    service.halt("global", reason="worse", actor=Actor.of(operator))
    request.refresh_from_db()
    assert request.status == ResumeRequest.Status.CANCELLED
    with pytest.raises(ResumeRequestInvalid, match="was cancelled"):
        service.approve_resume(request.pk, approver=Actor.of(supervisor2))
    assert state_of("global") == State.HALTED
    other.refresh_from_db()
    assert other.status == ResumeRequest.Status.PENDING  # another scope's request stands


def test_a_resume_request_for_a_scope_not_restricted_is_refused(operator, supervisor, two_person_resume):
    with pytest.raises(InvalidTransition, match="global is already ACTIVE: there is nothing to resume"):
        service.request_resume("global", reason="y", actor=Actor.of(supervisor))
    service.halt("symbol:AAPL", reason="x", actor=Actor.of(operator), to_state=State.REDUCING)
    with pytest.raises(InvalidTransition, match="already REDUCING"):
        service.request_resume("symbol:AAPL", reason="y", actor=Actor.of(supervisor), to_state=State.REDUCING)
    assert not ResumeRequest.objects.exists()


def test_a_direct_resume_cancels_the_scopes_open_requests(operator, supervisor, supervisor2, settings):
    settings.TRADING_TWO_PERSON_RESUME = True
    service.halt("global", reason="x", actor=Actor.of(operator))
    request = service.request_resume("global", reason="y", actor=Actor.of(supervisor))
    settings.TRADING_TWO_PERSON_RESUME = False  # e.g. switched off during an incident
    service.resume("global", reason="fixed", actor=Actor.of(supervisor2))
    request.refresh_from_db()
    assert request.status == ResumeRequest.Status.CANCELLED
    assert not ResumeRequest.objects.pending().exists()


def test_an_approval_cancels_the_other_open_requests_of_its_scope(
    operator, supervisor, supervisor2, two_person_resume
):
    third = make_user("third", "ops_supervisor")
    service.halt("global", reason="x", actor=Actor.of(operator))
    first = service.request_resume("global", reason="y", actor=Actor.of(supervisor))
    second = service.request_resume("global", reason="z", actor=Actor.of(third))
    service.approve_resume(first.pk, approver=Actor.of(supervisor2))
    statuses = dict(ResumeRequest.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "approved", second.pk: "cancelled"}


def test_an_approval_from_a_shell_is_refused(operator, supervisor, supervisor2, two_person_resume):
    service.halt("global", reason="x", actor=Actor.of(operator))
    request = service.request_resume("global", reason="y", actor=Actor.from_shell(supervisor))
    with pytest.raises(NotPermitted, match="login session"):
        service.approve_resume(request.pk, approver=Actor.from_shell(supervisor2))
    assert state_of("global") == State.HALTED
    event = service.approve_resume(request.pk, approver=Actor.of(supervisor2)).event
    request.refresh_from_db()
    assert request.origin.startswith("cli ") and event.origin == "admin"


def test_a_request_is_approved_only_once(operator, supervisor, supervisor2, two_person_resume):
    third = make_user("third", "ops_supervisor")
    service.halt("global", reason="x", actor=Actor.of(operator))
    request = service.request_resume("global", reason="y", actor=Actor.of(supervisor))
    service.approve_resume(request.pk, approver=Actor.of(supervisor2))
    with pytest.raises(ResumeRequestInvalid, match="already approved"):
        service.approve_resume(request.pk, approver=Actor.of(third))


# --- the audit log ----------------------------------------------------------------------


# The audit log's append-only guard, on both databases: test_guards.py.


def test_a_request_whose_requester_lost_the_role_cannot_be_approved(
    supervisor, supervisor2, two_person_resume
):
    from django.contrib.auth.models import Group

    service.halt("global", reason="incident", actor=service.Actor.of(supervisor))
    request = service.request_resume("global", reason="fixed", actor=service.Actor.of(supervisor))
    supervisor.groups.set([Group.objects.get(name="ops_viewer")])  # demoted meanwhile
    with pytest.raises(NotPermitted, match="resume"):
        service.approve_resume(request.pk, approver=service.Actor.of(supervisor2))
    assert TradingState.objects.get(scope="global").state == State.HALTED
    assert ResumeRequest.objects.get(pk=request.pk).status == ResumeRequest.Status.PENDING
