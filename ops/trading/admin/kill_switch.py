"""The kill switch in the admin: halt, reduce and resume actions that ask for a reason,
and the second supervisor's approval of a resume request."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ops.admin_base import ReadOnlyAdmin
from ops.trading import broker, service
from ops.trading.errors import TradingStateError
from ops.trading.models import (
    BrokerOutbox,
    BrokerOutcome,
    ResumeRequest,
    State,
    TradingState,
)
from ops.trading.scopes import InvalidScope, parse_scope


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)


class HaltForm(ReasonForm):
    cancel_orders = forms.BooleanField(
        required=False, label="Also cancel all open orders at Alpaca (global halts only)"
    )


class HaltScopeForm(HaltForm):
    scope = forms.CharField(help_text="global, strategy:<name> or symbol:<TICKER>")
    state = forms.ChoiceField(choices=[(State.HALTED, "HALTED"), (State.REDUCING, "REDUCING (reduce-only)")])
    field_order = ["scope", "state", "reason", "cancel_orders"]

    def clean_scope(self) -> str:
        try:
            return parse_scope(self.cleaned_data["scope"])
        except InvalidScope as exc:
            raise forms.ValidationError(str(exc)) from None


def _halting(to_state: str):
    """The call that halts or reduces a scope, made from a form's data."""

    def make_call(data: dict):
        return lambda actor, scope: service.halt(
            scope,
            reason=data["reason"],
            actor=actor,
            to_state=to_state,
            cancel_orders=data.get("cancel_orders", False),  # ReasonForm has no such box
        )

    return make_call


@admin.register(TradingState)
class TradingStateAdmin(ReadOnlyAdmin):
    list_display = ("scope", "state", "since", "changed_by", "source", "reason")
    list_filter = ("state",)
    search_fields = ("scope",)
    actions = ("halt_selected", "reduce_selected", "resume_selected")

    def get_urls(self):
        halt_view = self.admin_site.admin_view(self.halt_scope_view)
        return [path("halt/", halt_view, name="ops_tradingstate_halt"), *super().get_urls()]

    def halt_scope_view(self, request: HttpRequest) -> HttpResponse:
        form = HaltScopeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if self._run(request, data["scope"], _halting(data["state"])(data)):
                return HttpResponseRedirect(reverse("admin:ops_tradingstate_changelist"))
        return self._page(request, form, "Halt or reduce a scope", "Apply", [], None, [])

    @admin.action(description="Halt selected scopes (no new trades)")
    def halt_selected(self, request: HttpRequest, queryset: QuerySet[TradingState]):
        return self._ask(request, queryset, "halt_selected", HaltForm, "Halt", _halting(State.HALTED))

    @admin.action(description="Set selected scopes to reducing-only")
    def reduce_selected(self, request: HttpRequest, queryset: QuerySet[TradingState]):
        return self._ask(
            request, queryset, "reduce_selected", ReasonForm, "Reduce only", _halting(State.REDUCING)
        )

    @admin.action(description="Resume selected scopes (ACTIVE)")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[TradingState]):
        def resume(data):
            if settings.TRADING_TWO_PERSON_RESUME:
                return lambda actor, scope: service.request_resume(scope, reason=data["reason"], actor=actor)
            return lambda actor, scope: service.resume(scope, reason=data["reason"], actor=actor)

        return self._ask(request, queryset, "resume_selected", ReasonForm, "Resume", resume)

    def _ask(self, request, queryset, action, form_class, label, make_call):
        """The intermediate page: nothing happens until a reason is given and posted."""
        form = form_class(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            call = make_call(form.cleaned_data)
            for row in queryset:
                self._run(request, row.scope, call)
            return None  # back to the changelist, with the messages
        scopes = [row.scope for row in queryset]
        selected = [str(row.pk) for row in queryset]
        return self._page(request, form, f"{label}: give the reason", label, scopes, action, selected)

    def _run(self, request: HttpRequest, scope: str, call) -> bool:
        try:
            result = call(service.Actor.of(request.user), scope)
        except TradingStateError as exc:
            self.message_user(request, f"{scope}: {exc}", messages.ERROR)
            return False
        except InvalidScope as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        if isinstance(result, ResumeRequest):
            self.message_user(
                request,
                f"{scope}: resume request #{result.pk} created; a different supervisor must approve it "
                f"under Resume requests before {result.expires_at:%H:%M:%S} UTC.",
                messages.WARNING,
            )
        elif result.changed:
            event = result.event
            self.message_user(request, f"{scope}: {event.from_state} → {event.to_state}.", messages.SUCCESS)
            if event.broker_outcome != BrokerOutcome.NOT_REQUESTED:
                self._report_broker(request, event)
        elif result.cancellation is not None:
            self.message_user(request, f"{scope}: already HALTED; nothing changed.", messages.INFO)
            self._report_broker(request, result.cancellation)
        else:
            self.message_user(
                request, f"{scope}: already {result.state.state}; nothing changed.", messages.INFO
            )
        return True

    def _report_broker(self, request: HttpRequest, row: BrokerOutbox) -> None:
        # Wait a few seconds for the task, then say honestly what is known.
        row = broker.wait_for_outcome(row)
        level = {BrokerOutcome.SUCCEEDED: messages.SUCCESS, BrokerOutcome.FAILED: messages.ERROR}
        self.message_user(
            request,
            f"Cancel all open orders at the broker: {row.broker_summary}.",
            level.get(row.broker_outcome, messages.WARNING),
        )

    def _page(self, request, form, heading, submit_label, scopes, action, selected):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": heading,
            "heading": heading,
            "form": form,
            "scopes": scopes,
            "action": action,
            "selected": selected,
            "submit_label": submit_label,
        }
        return TemplateResponse(request, "admin/ops/tradingstate/transition.html", context)


@admin.register(ResumeRequest)
class ResumeRequestAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "scope",
        "from_state",
        "to_state",
        "requested_by",
        "origin",
        "created_at",
        "expires_at",
        "status_shown",
        "approved_by",
        "reason",
    )
    list_filter = ("status",)
    actions = ("approve_selected",)

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: ResumeRequest) -> str:
        return obj.shown_status

    @admin.action(description="Approve selected resume requests")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[ResumeRequest]) -> None:
        approver = service.Actor.of(request.user)
        for resume_request in queryset:
            try:
                result = service.approve_resume(resume_request.pk, approver=approver)
            except TradingStateError as exc:
                self.message_user(request, f"Request #{resume_request.pk}: {exc}", messages.ERROR)
                continue
            self.message_user(
                request, f"{result.state.scope}: resumed to {result.state.state}.", messages.SUCCESS
            )
