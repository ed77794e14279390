"""The ops console at `/`: staff with an ops role see it; the controls call the kill-switch service.

Every control is a POST with CSRF that redirects back (PRG) with a message saying what
happened. The server checks the permission itself before anything else: a disabled
button in the page is a courtesy, a forged POST gets 403 and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from kombu.exceptions import OperationalError as BrokerUnavailable

from ops.alerts import silences
from ops.alerts.silences import SILENCE
from ops.console import grafana
from ops.console.forms import CONFIRM_WORD, HaltForm, ResumeForm
from ops.console.overview import Permissions, overview
from ops.drill.tasks import console_drill
from ops.trading import broker, service
from ops.trading.errors import NotPermitted, TradingStateError
from ops.trading.gate import TradingStateUnavailable, effective_state
from ops.trading.models import GLOBAL_SCOPE, BrokerOutbox, BrokerOutcome, State
from ops.trading.roles import role_needed

# Recorded on every event and request made here: a login session, like the admin's.
ORIGIN = "web"
NO_ROLE = (
    "This console is for people with an ops role (viewer, operator or supervisor). "
    "Ask an administrator: manage.py ops_user {username} --role viewer"
)


# A control's permission in words, for its 403: "Halting ... needs the operator or supervisor role."
NEEDS = {
    "can_halt": ("Halting trading or setting it to reducing-only", service.HALT),
    "can_resume": ("Resuming trading (or requesting a resume)", service.RESUME),
    "can_approve": ("Approving a resume request", service.APPROVE),
    "can_silence": ("Silencing an alert or expiring a silence", SILENCE),
    "can_run_drill": ("Running the kill-switch drill", service.RUN_DRILL),
}


def content_security_policy() -> str:
    """Frames only from Grafana's origin; nobody may frame us (with X-Frame-Options DENY)."""
    frame_src = grafana.grafana_origin() or "'none'"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"frame-src {frame_src}",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
        ]
    )


def console_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required (→ login page); staff with an ops role only (→ 403); CSP on every answer."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            response = redirect_to_login(request.get_full_path())
        else:
            request.console_permissions = Permissions.of(request.user)
            if request.user.is_staff and request.console_permissions.has_ops_role:
                response = view(request, *args, **kwargs)
            else:
                response = _forbidden(request, NO_ROLE.format(username=request.user.get_username()))
        response["Content-Security-Policy"] = content_security_policy()
        return response

    return never_cache(wrapped)


def needs(permission: str) -> Callable:
    """A control's permission, checked before the form is even read."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not getattr(request.console_permissions, permission):
                action, codename = NEEDS[permission]
                return _forbidden(request, f"{action} needs {role_needed(codename)}.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


@require_GET
@console_view
def console(request: HttpRequest) -> HttpResponse:
    return _page(request, HaltForm(), ResumeForm())


# The header Grafana's auth proxy mode reads the user from (GF_AUTH_PROXY_HEADER_NAME). The
# prefix keeps a console user from ever matching a Grafana account made by hand, such as
# Grafana's own admin.
GRAFANA_USER_HEADER = "X-WEBAUTH-USER"
GRAFANA_USER_PREFIX = "console-"


@require_GET
@never_cache
def grafana_auth(request: HttpRequest) -> HttpResponse:
    """The TLS proxy's forward_auth check in front of /grafana/ (monitoring/Caddyfile).

    200 with the Grafana user for staff with an ops role (any: the panels are what a
    viewer sees on the console anyway), 401 without a console login, 403 without a role.
    No redirect: the proxy passes anything but a 2xx to the browser, and a login page in
    a panel's frame would only confuse.
    """
    user = request.user
    if not user.is_authenticated:
        return HttpResponse("Log in to the ops console first.\n", status=401, content_type="text/plain")
    if not (user.is_staff and Permissions.of(user).has_ops_role):
        return HttpResponse(
            NO_ROLE.format(username=user.get_username()) + "\n", status=403, content_type="text/plain"
        )
    response = HttpResponse(status=200)
    response[GRAFANA_USER_HEADER] = GRAFANA_USER_PREFIX + user.get_username()
    return response


@require_GET
@console_view
def live(request: HttpRequest) -> HttpResponse:
    """The part of the page that the script refreshes every few seconds."""
    return TemplateResponse(request, "ops/console/_live.html", _live_context(request))


@require_POST
@console_view
@needs("can_halt")
def halt(request: HttpRequest) -> HttpResponse:
    form = HaltForm(request.POST)
    if not form.is_valid():
        return _page(request, form, ResumeForm(), status=400)
    data = form.cleaned_data
    try:
        result = service.halt(
            data["scope"],
            reason=data["reason"],
            actor=service.Actor.of(request.user, origin=ORIGIN),
            to_state=data["state"],
            cancel_orders=data["cancel_orders"],
        )
    except TradingStateError as exc:
        return _refused(request, exc)
    scope = result.state.scope
    if result.changed:
        messages.success(
            request, f"{scope}: {result.event.from_state} → {result.event.to_state}. {_gate_says(scope)}"
        )
    else:
        messages.info(
            request, f"{scope} was already {result.state.state}; nothing changed. {_gate_says(scope)}"
        )
    outbox = result.event if result.changed else result.cancellation
    if outbox is not None and outbox.broker_outcome != BrokerOutcome.NOT_REQUESTED:
        _report_broker(request, outbox)
    return redirect("console")


@require_POST
@console_view
@needs("can_resume")
def resume(request: HttpRequest) -> HttpResponse:
    form = ResumeForm(request.POST)
    if not form.is_valid():
        return _page(request, HaltForm(), form, status=400)
    data = form.cleaned_data
    actor = service.Actor.of(request.user, origin=ORIGIN)
    try:
        if settings.TRADING_TWO_PERSON_RESUME:
            made = service.request_resume(
                data["scope"], reason=data["reason"], actor=actor, to_state=data["state"]
            )
        else:
            result = service.resume(data["scope"], reason=data["reason"], actor=actor, to_state=data["state"])
    except TradingStateError as exc:
        return _refused(request, exc)
    if settings.TRADING_TWO_PERSON_RESUME:
        messages.warning(
            request,
            f"{made.scope}: resume request #{made.pk} to {made.to_state} made. Nothing changes until a "
            f"different supervisor approves it here, before {made.expires_at:%H:%M:%S} UTC.",
        )
    elif result.changed:
        messages.success(request, f"{result.state.scope}: {result.event.from_state} → {result.state.state}.")
    else:
        messages.info(request, f"{result.state.scope} was already {result.state.state}; nothing changed.")
    if not settings.TRADING_TWO_PERSON_RESUME:
        messages.info(request, _gate_says(result.state.scope))
    return redirect("console")


@require_POST
@console_view
@needs("can_approve")
def approve(request: HttpRequest, request_id: int) -> HttpResponse:
    try:
        result = service.approve_resume(request_id, approver=service.Actor.of(request.user, origin=ORIGIN))
    except TradingStateError as exc:
        return _refused(request, exc)
    messages.success(
        request,
        f"Request #{request_id} approved: {result.state.scope} is now {result.state.state}. "
        f"{_gate_says(result.state.scope)}",
    )
    return redirect("console")


def _error_summary(*forms) -> list[tuple[str, str]]:
    """(field id, message) for each error, in the page's order: the GOV.UK error summary."""
    found = []
    for form in forms:
        if not form.is_bound:
            continue
        for name, errors in form.errors.items():
            if name == "__all__":
                anchor, label = f"{form.prefix}-controls", ""
            else:
                field = form[name]
                # The scope is two widgets; the link goes to the first (the kind).
                anchor = field.auto_id + ("_0" if name == "scope" else "")
                label = f"{field.label}: " if name in ("reason", "scope") else ""
            found.extend((anchor, f"{label}{error}") for error in errors)
    return found


@require_POST
@console_view
@needs("can_run_drill")
def drill(request: HttpRequest) -> HttpResponse:
    """Queue one kill-switch drill (it takes up to a few minutes, so it runs in the worker)."""
    halted = service.halted_real_scopes()
    if halted:
        messages.error(
            request, "Nothing started: " + service.NO_DRILL_DURING_INCIDENT.format(scopes=", ".join(halted))
        )
        return redirect("console")
    try:
        console_drill.delay(request.user.pk)
    except BrokerUnavailable as exc:
        messages.error(
            request, f"Nothing started: the task queue cannot be reached ({exc}). Run manage.py drill."
        )
        return redirect("console")
    messages.info(
        request,
        "Kill-switch drill started on strategy:__drill__ only (real trading is not touched); "
        "its result shows under the controls when it ends. Reload to see it.",
    )
    return redirect("console")


def _page(
    request: HttpRequest, halt_form: HaltForm, resume_form: ResumeForm, status: int = 200
) -> HttpResponse:
    try:
        panels, panels_error = grafana.embedded_panels(), ""
    except grafana.DashboardUnavailable as exc:
        panels, panels_error = [], str(exc)
    context = {
        **_live_context(request),
        "halt_form": halt_form,
        "resume_form": resume_form,
        "confirm_word": CONFIRM_WORD,
        "error_summary": _error_summary(halt_form, resume_form),
        "two_person": settings.TRADING_TWO_PERSON_RESUME,
        "panels": panels,
        "panels_error": panels_error,
        "grafana_hint": grafana.ENABLE_HINT,
    }
    return TemplateResponse(request, "ops/console/page.html", context, status=status)


def _live_context(request: HttpRequest) -> dict:
    return {
        "overview": overview(),
        "perms": request.console_permissions,
        "user": request.user,
        "silences": silences.for_console(),
    }


def _refused(request: HttpRequest, exc: TradingStateError) -> HttpResponse:
    if isinstance(exc, NotPermitted):
        # The service's own check (e.g. approving one's own request): still a 403.
        return _forbidden(request, str(exc))
    messages.error(request, f"Nothing changed: {exc}")
    return redirect("console")


def _forbidden(request: HttpRequest, reason: str) -> HttpResponse:
    return TemplateResponse(request, "ops/console/forbidden.html", {"reason": reason}, status=403)


def _gate_says(scope: str) -> str:
    """What the pre-trade gate reads now, read the way the gate reads it.

    When a broader scope is stricter (global HALTED while a strategy is set to REDUCING),
    that is said separately, with its own reason: the action did not cause it.
    """
    kind, _, name = scope.partition(":")
    symbol = name if kind == "symbol" else None
    strategy = name if kind == "strategy" else None
    where = "" if scope == GLOBAL_SCOPE else f" for {scope}"
    try:
        effective = effective_state(symbol, strategy)
    except TradingStateUnavailable:
        return "The gate cannot read the state right now, so it refuses every trade (503)."
    if effective.scope != scope and effective.state != State.ACTIVE:
        code = "trading_halted" if effective.state == State.HALTED else "trading_reducing"
        return (
            f"Still restricted: {effective.scope} is {effective.state} (why: {effective.reason}), "
            f"so the gate answers 423 {code} for {scope} whatever its own state, until "
            f"{effective.scope} is resumed."
        )
    if effective.state == State.HALTED:
        return f"The pre-trade gate now refuses new trades{where} (423 trading_halted)."
    if effective.state == State.REDUCING:
        return (
            f"The pre-trade gate now accepts only position-reducing trades{where} "
            "(others: 423 trading_reducing)."
        )
    return f"The pre-trade gate accepts trades{where} again."


def _report_broker(request: HttpRequest, row: BrokerOutbox) -> None:
    # Like the admin: wait a few seconds for the task, then say honestly what is known.
    row = broker.wait_for_outcome(row)
    level = {BrokerOutcome.SUCCEEDED: messages.SUCCESS, BrokerOutcome.FAILED: messages.ERROR}
    messages.add_message(
        request,
        level.get(row.broker_outcome, messages.WARNING),
        f"Cancel all open orders at the broker: {row.broker_summary}.",
    )
