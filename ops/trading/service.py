"""The kill switch: every change of trading state goes through this module.

Each transition runs in one transaction that locks the scope's row (SELECT ... FOR
UPDATE), validates, writes the new state and its audit event together. Views, admin
actions, management commands and tasks call these functions and nothing else writes
TradingState.

Semantics worth knowing:
- halt() only tightens (ACTIVE→REDUCING→HALTED); resume() only loosens. Loosening is
  the dangerous direction, so it needs the supervisor permission and, with the
  two-person setting on, a request by one person and an approval by another.
- Asking for the state a scope is already in changes nothing and writes no event: the
  original reason, author and start time stay, so the history never shows a halt that
  "began" at the second click. The result says changed=False. A cancel-orders request
  on an already halted global scope still runs, recorded as a BrokerCancellation.
- Permissions are read from groups and direct grants for everyone; a superuser flag
  grants nothing here (roles: ops_viewer, ops_operator, ops_supervisor).
- Every event and request records its origin: "admin" (a login session), "cli
  <os-login>@<host>" (manage.py from a shell) or "system". A shell's --actor is a name
  typed by whoever has the shell, not a login, so approving a resume request needs a
  login session: one shell user cannot play both people of the two-person rule.
- Any transition of a scope ends its open resume requests (CANCELLED): they were asked
  against the state it had before.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ops.trading import broker
from ops.trading.errors import (
    InvalidTransition,
    NotPermitted,
    ResumeRequestInvalid,
    TwoPersonRuleRequired,
)
from ops.trading.models import (
    DRILL_SCOPE,
    GLOBAL_SCOPE,
    SEVERITY,
    BrokerCancellation,
    BrokerOutcome,
    ResumeRequest,
    State,
    TradingEvent,
    TradingState,
)
from ops.trading.roles import role_needed
from ops.trading.scopes import parse_scope

logger = logging.getLogger(__name__)

HALT, RESUME, APPROVE = "halt_trading", "resume_trading", "approve_resume"
BOOK_FILL = "book_fill"  # ops.trading.gate.book_fill: a broker fill past the gate
RUN_DRILL = "run_drill"  # ops.drill: halt and resume the drill scope, nothing else
DRILL_SOURCE = DRILL_ORIGIN = "drill"
_SOURCE = re.compile(r"\A(manual|command|(rule|alert):[A-Za-z0-9_.:-]{1,80})\Z")
DRILL_SCOPE_IS_THE_DRILLS = (
    f"{DRILL_SCOPE} belongs to the kill-switch drill (manage.py drill): it is halted and "
    "resumed only by a drill, and no real order can name it."
)
MAX_REASON = 2000
APPROVAL_NEEDS_SESSION = (
    "Approving a resume needs a login session (the admin's Resume requests page): a name given "
    "on a command line is not authenticated, so one shell user could play both people."
)


def shell_origin() -> str:
    """ "cli <login>@<host>" for a command run from a shell; the person behind sudo if any."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers): the uid still says who
        login = f"uid {os.getuid()}"
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != login:
        login = f"{sudo_user} (sudo as {login})"
    return f"cli {login}@{socket.gethostname()}"


@dataclass(frozen=True)
class Actor:
    """Who asks for a transition: a person (user) or a named system component.

    `session` is True only when a login session proved who the person is (admin,
    console); a name given on a command line proves nothing about who typed it.
    """

    name: str
    user: object | None = None
    system_permissions: frozenset[str] = field(default_factory=frozenset)
    origin: str = "system"
    session: bool = False

    @classmethod
    def of(cls, user, *, origin: str = "admin") -> Actor:
        """A person logged in to the admin or the console."""
        return cls(name=user.get_username(), user=user, origin=origin, session=True)

    @classmethod
    def from_shell(cls, user) -> Actor:
        """A person named on a command line; the OS login and host are recorded with it."""
        return cls(name=user.get_username(), user=user, origin=shell_origin())

    @classmethod
    def system(cls, name: str, *permissions: str) -> Actor:
        return cls(name=f"system:{name}", system_permissions=frozenset(permissions))

    def has_perm(self, codename: str) -> bool:
        if self.user is None:
            return codename in self.system_permissions
        if not self.user.is_active:
            return False
        # Not user.has_perm(): it grants a superuser everything, and the kill switch
        # checks every person the same way.
        return Permission.objects.filter(
            Q(user=self.user) | Q(group__user=self.user),
            content_type__app_label="ops",
            codename=codename,
        ).exists()

    def require(self, codename: str, action: str) -> None:
        if not self.has_perm(codename):
            raise NotPermitted(
                f"{self.name} may not {action}: that needs {role_needed(codename)} "
                f"(the ops.{codename} permission)."
            )


@dataclass(frozen=True)
class TransitionResult:
    state: TradingState
    event: TradingEvent | None
    # Set when orders were cancelled on a scope that was already HALTED (no event).
    cancellation: BrokerCancellation | None = None

    @property
    def changed(self) -> bool:
        return self.event is not None


def halt(
    scope: str,
    *,
    reason: str,
    actor: Actor,
    to_state: str = State.HALTED,
    source: str = "manual",
    cancel_orders: bool = False,
) -> TransitionResult:
    """Tighten `scope` to HALTED (default) or REDUCING. Any operator may."""
    scope, reason, source = _clean(scope, reason, source)
    _not_the_drill_scope(scope)
    if to_state not in (State.HALTED, State.REDUCING):
        raise InvalidTransition(f"halt() goes to HALTED or REDUCING, not {to_state}.")
    if cancel_orders and scope != GLOBAL_SCOPE:
        raise InvalidTransition(
            "Cancelling open orders at the broker is account-wide; ask for it only with a global halt."
        )
    actor.require(HALT, "halt trading")
    with transaction.atomic():
        row = _locked(scope)
        if SEVERITY[row.state] > SEVERITY[to_state]:
            raise InvalidTransition(
                f"{scope} is {row.state}; going to {to_state} loosens it, which is a resume."
            )
        result = _apply(row, to_state, reason, actor, source, broker_requested=cancel_orders)
        if cancel_orders and not result.changed:
            # Already halted (say, by an automatic trip): the orders can still be
            # cancelled, recorded on a cancellation row since there is no new event.
            result = TransitionResult(
                result.state,
                None,
                BrokerCancellation.objects.create(
                    actor=actor.name, source=source, reason=reason, origin=actor.origin
                ),
            )
        if cancel_orders:
            # An outbox: the row says PENDING in this transaction, a task queued on commit
            # makes the call (with retries, and a beat sweep if the task is lost). The
            # halt never waits on the broker; broker.wait_for_outcome() is for callers
            # that want to tell a person.
            broker.enqueue_cancellation(result.event or result.cancellation)
    return result


def resume(
    scope: str, *, reason: str, actor: Actor, to_state: str = State.ACTIVE, source: str = "manual"
) -> TransitionResult:
    """Loosen `scope` to ACTIVE (default) or REDUCING, when one person may do it alone."""
    if settings.TRADING_TWO_PERSON_RESUME:
        raise TwoPersonRuleRequired(
            "Two-person resume is on: request_resume() by one supervisor, approve_resume() by another."
        )
    scope, reason, source = _clean(scope, reason, source)
    _not_the_drill_scope(scope)
    actor.require(RESUME, "resume trading")
    with transaction.atomic():
        row = _locked(scope)
        _check_loosens(row, to_state)
        return _apply(row, to_state, reason, actor, source)


def request_resume(scope: str, *, reason: str, actor: Actor, to_state: str = State.ACTIVE) -> ResumeRequest:
    """First step of a two-person resume. The request expires after a setting's minutes."""
    scope, reason, _ = _clean(scope, reason, "manual")
    _not_the_drill_scope(scope)
    actor.require(RESUME, "request a resume")
    if actor.user is None:
        raise NotPermitted("A resume request needs a person, not a system actor.")
    with transaction.atomic():
        row = _locked(scope)
        _check_loosens(row, to_state)
        if row.state == to_state:
            # Approved, it would change nothing and write no event ("ACTIVE → ACTIVE"):
            # a second person's attention for nothing, and a false entry in the requests.
            raise InvalidTransition(f"{scope} is already {row.state}: there is nothing to resume.")
        now = timezone.now()
        request = ResumeRequest.objects.create(
            scope=scope,
            from_state=row.state,
            to_state=to_state,
            reason=reason,
            requested_by=actor.user,
            origin=actor.origin,
            created_at=now,
            expires_at=now + timedelta(minutes=settings.TRADING_RESUME_REQUEST_TTL_MINUTES),
        )
    logger.warning("resume of %s to %s requested by %s: %s", scope, to_state, actor.name, reason)
    return request


def approve_resume(request_id: int, *, approver: Actor, source: str = "manual") -> TransitionResult:
    """Second step: a different person with the approve permission carries it out."""
    _, _, source = _clean(GLOBAL_SCOPE, "-", source)
    approver.require(APPROVE, "approve a resume")
    if not approver.session:
        raise NotPermitted(APPROVAL_NEEDS_SESSION)
    with transaction.atomic():
        try:
            request = ResumeRequest.objects.select_for_update().get(pk=request_id)
        except ResumeRequest.DoesNotExist:
            raise ResumeRequestInvalid(f"There is no resume request {request_id}.") from None
        if request.status == ResumeRequest.Status.CANCELLED:
            raise ResumeRequestInvalid(
                f"Resume request {request_id} was cancelled: {request.scope} changed state after it "
                f"was made. Request again if a resume is still wanted."
            )
        if request.status != ResumeRequest.Status.PENDING:
            raise ResumeRequestInvalid(f"Resume request {request_id} is already {request.status}.")
        if request.expires_at <= timezone.now():
            raise ResumeRequestInvalid(
                f"Resume request {request_id} expired at {request.expires_at:%H:%M:%S}."
            )
        if approver.user is None or approver.user.pk == request.requested_by_id:
            raise NotPermitted("The approver must be a different person from the requester.")
        # The event names the requester as actor and records where the approval came from.
        requester = Actor(name=request.requested_by.get_username(), user=request.requested_by)
        # The requester's role may have changed (or the account been disabled) since
        # the request: an approval carries out their request, so they must still hold it.
        requester.require(RESUME, "have a resume request approved")
        row = _locked(request.scope)
        if row.state != request.from_state:
            # The scope moved since the request (e.g. escalated): approving now would
            # loosen something the requester never saw.
            raise ResumeRequestInvalid(
                f"{request.scope} is now {row.state}, not {request.from_state} as requested; request again."
            )
        request.status = ResumeRequest.Status.APPROVED
        request.approved_by = approver.user
        request.save(update_fields=["status", "approved_by"])
        result = _apply(
            row,
            request.to_state,
            request.reason,
            requester,
            source,
            approver=approver.name,
            origin=approver.origin,
        )
        request.event = result.event
        request.save(update_fields=["event"])
    return result


def drill_transition(to_state: str, *, reason: str, actor: Actor) -> TransitionResult:
    """The drill's own halt (to HALTED) or resume (to ACTIVE) of the drill scope.

    It takes no scope: the one it acts on is fixed here, so the single-person resume it
    allows (a drill must end without waiting for a second supervisor) can never loosen
    a real scope. Same lock, same audit event, same transaction as any transition, with
    origin and source "drill". A halt refuses while any real scope is HALTED: an
    incident is not the time for a drill.
    """
    if to_state not in (State.HALTED, State.ACTIVE):
        raise InvalidTransition(f"A drill halts to HALTED or resumes to ACTIVE, not {to_state}.")
    scope, reason, _ = _clean(DRILL_SCOPE, reason, "manual")
    actor.require(RUN_DRILL, "run the kill-switch drill")
    drill_actor = Actor(
        name=actor.name, user=actor.user, system_permissions=actor.system_permissions, origin=DRILL_ORIGIN
    )
    with transaction.atomic():
        if to_state == State.HALTED and (halted := halted_real_scopes()):
            raise InvalidTransition(NO_DRILL_DURING_INCIDENT.format(scopes=", ".join(halted)))
        row = _locked(scope)
        return _apply(row, to_state, reason, drill_actor, DRILL_SOURCE)


NO_DRILL_DURING_INCIDENT = (
    "No drill while a real scope is HALTED ({scopes}): an incident is not the time for a drill."
)


def halted_real_scopes() -> list[str]:
    """The HALTED scopes other than the drill's own, sorted."""
    rows = TradingState.objects.real().filter(state=State.HALTED)
    return sorted(rows.values_list("scope", flat=True))


def _not_the_drill_scope(scope: str) -> None:
    if scope == DRILL_SCOPE:
        raise InvalidTransition(DRILL_SCOPE_IS_THE_DRILLS)


def _clean(scope: str, reason: str, source: str) -> tuple[str, str, str]:
    scope = parse_scope(scope)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidTransition("A reason is required: say why, for the people reading the log later.")
    if len(reason) > MAX_REASON:
        raise InvalidTransition(f"The reason may be at most {MAX_REASON} characters.")
    if not _SOURCE.match(source or ""):
        raise InvalidTransition(f"{source!r} is not a source: manual, command, rule:<name> or alert:<name>.")
    return scope, reason, source


def _check_loosens(row: TradingState, to_state: str) -> None:
    if to_state not in (State.ACTIVE, State.REDUCING):
        raise InvalidTransition(f"A resume goes to ACTIVE or REDUCING, not {to_state}.")
    if SEVERITY[row.state] < SEVERITY[to_state]:
        raise InvalidTransition(f"{row.scope} is {row.state}; going to {to_state} tightens it: use halt.")


def _locked(scope: str) -> TradingState:
    """The scope's row, locked until the transaction ends (created ACTIVE if new)."""
    TradingState.objects.get_or_create(scope=scope)
    return TradingState.objects.select_for_update().get(scope=scope)


def _apply(
    row: TradingState,
    to_state: str,
    reason: str,
    actor: Actor,
    source: str,
    *,
    approver: str = "",
    origin: str | None = None,
    broker_requested: bool = False,
) -> TransitionResult:
    if row.state == to_state:
        return TransitionResult(state=row, event=None)
    now = timezone.now()
    event = TradingEvent.objects.create(
        scope=row.scope,
        from_state=row.state,
        to_state=to_state,
        reason=reason,
        actor=actor.name,
        source=source,
        approver=approver,
        origin=actor.origin if origin is None else origin,
        created_at=now,
        broker_outcome=BrokerOutcome.PENDING if broker_requested else BrokerOutcome.NOT_REQUESTED,
    )
    # Open requests were asked against the state the scope had until now: approving one
    # later would act on a picture nobody saw. Under the row lock, with the event.
    ResumeRequest.objects.open().filter(scope=row.scope).update(status=ResumeRequest.Status.CANCELLED)
    row.state, row.reason, row.since, row.changed_by, row.source = to_state, reason, now, actor.name, source
    row.save(update_fields=["state", "reason", "since", "changed_by", "source"])
    logger.warning(
        "trading %s: %s -> %s by %s (%s): %s",
        row.scope,
        event.from_state,
        to_state,
        actor.name,
        source,
        reason,
    )
    return TransitionResult(state=row, event=event)
