"""Trading admin: trades added through the gate; kill-switch actions that ask for a reason; the audit."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ops.admin_base import LargeTableAdmin, ReadOnlyAdmin
from ops.records.intake import ConflictingOrder, TradeOrder
from ops.records.models import Trade
from ops.trading import broker, gate, service
from ops.trading.errors import TradingStateError
from ops.trading.models import (
    BrokerCancellation,
    BrokerOutbox,
    BrokerOutcome,
    FillBooking,
    ResumeRequest,
    State,
    TradingEvent,
    TradingState,
)
from ops.trading.roles import role_needed
from ops.trading.scopes import InvalidScope, parse_scope

GATE_NOTE = (
    "A trade added here passes the pre-trade gate like one from the API: it is refused "
    "while its scope is HALTED, and while REDUCING unless it shrinks the position. A fill "
    "that already happened at the broker is booked instead under Trades → Book a broker fill "
    "(supervisors; recorded as a fill booking)."
)


class BookFillForm(forms.ModelForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Which broker fill this is (the broker's order id) and why it is booked here.",
    )

    class Meta:
        model = Trade
        fields = ("client_order_id", "symbol", "side", "quantity", "price", "strategy", "executed_at")
        help_texts = {"executed_at": "When the broker filled it, UTC: YYYY-MM-DD HH:MM:SS."}


class TradeAddForm(forms.ModelForm):
    class Meta:
        model = Trade
        fields = ("client_order_id", "symbol", "side", "quantity", "price", "strategy", "executed_at")

    def clean(self) -> dict:
        data = super().clean()
        names = ("client_order_id", "symbol", "side", "quantity", "price", "strategy")
        if self.errors or any(data.get(name) in (None, "") for name in names):
            return data
        # An early look, for a message on the form with its values kept; save_model's
        # submit_trade() decides for good, under the position lock.
        order = TradeOrder.from_dict(data)
        try:
            effective = gate.effective_state(order.symbol, order.strategy)
            gate.check(effective, order, gate.position_of(order.strategy, order.symbol))
        except gate.TradeDenied as exc:
            raise forms.ValidationError(f"Not added: {exc.detail}", code=exc.code) from None
        except gate.TradingStateUnavailable:
            raise forms.ValidationError(REFUSED_UNAVAILABLE, code="trading_state_unavailable") from None
        return data


REFUSED_UNAVAILABLE = "Not added: the trading state cannot be read, and the gate fails closed."


@admin.register(Trade)
class TradeAdmin(LargeTableAdmin):
    list_display = ("executed_at", "client_order_id", "symbol", "side", "quantity", "price", "strategy")
    list_filter = ("side", "executed_at")
    date_hierarchy = "executed_at"
    search_fields = ("symbol", "client_order_id")  # enables the box; matching is exact
    exact_search_fields = ("symbol", "client_order_id")
    upper_case_search_fields = ("symbol",)
    search_help_text = "Exact symbol (e.g. AAPL) or client order id."
    list_select_related = False
    raw_id_fields = ("api_client",)

    # Trades are records of executions that already happened at the broker: editing
    # one would make the books disagree with the broker, so nothing is editable once
    # saved and nothing is deleted. A wrong trade is corrected by a new, offsetting one.
    # Adding by hand is allowed and goes through the pre-trade gate (submit_trade) like
    # every other creation path: the kill switch holds here too.
    def get_readonly_fields(self, request: HttpRequest, obj: Trade | None = None):
        if obj is None:
            return ("api_client",)
        return [field.name for field in Trade._meta.fields]

    def get_form(self, request: HttpRequest, obj: Trade | None = None, change: bool = False, **kwargs):
        if obj is None:
            kwargs["form"] = TradeAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Trade | None = None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return [(None, {**fieldsets[0][1], "description": GATE_NOTE})]
        return fieldsets

    def has_delete_permission(self, request: HttpRequest, obj: Trade | None = None) -> bool:
        return False

    def get_urls(self):
        book = self.admin_site.admin_view(self.book_fill_view)
        return [path("book-fill/", book, name="ops_trade_book_fill"), *super().get_urls()]

    def book_fill_view(self, request: HttpRequest) -> HttpResponse:
        """The explicit, permissioned, audited path for a fill that already happened."""
        actor = service.Actor.of(request.user)
        if not actor.has_perm(service.BOOK_FILL):
            # The page is refused, not just its button: the server is what enforces it.
            raise PermissionDenied(
                f"Booking a fill past the gate needs {role_needed(service.BOOK_FILL)} "
                "(the ops.book_fill permission)."
            )
        form = BookFillForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                trade, created = gate.book_fill(
                    TradeOrder.from_dict(data), actor=actor, reason=data["reason"]
                )
            except (ConflictingOrder, TradingStateError) as exc:
                form.add_error(None, str(exc))
            else:
                if created:
                    booking = trade.booking
                    self.message_user(
                        request,
                        f"Fill {trade.client_order_id} booked past the gate ({booking.scope_at_booking} was "
                        f"{booking.state_at_booking}); recorded under Fill bookings.",
                        messages.WARNING,
                    )
                else:
                    self.message_user(request, f"{trade.client_order_id} was already recorded; kept as is.")
                return HttpResponseRedirect(reverse("admin:ops_trade_change", args=[trade.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Book a broker fill",
            "form": form,
        }
        return TemplateResponse(request, "admin/ops/trade/book_fill.html", context)

    def save_model(self, request: HttpRequest, obj: Trade, form, change: bool) -> None:
        if change:
            return
        trade, created = gate.submit_trade(TradeOrder.from_dict(vars(obj)))
        if not created:
            messages.info(
                request, f"{trade.client_order_id} was already recorded by another writer; kept as is."
            )
        obj.pk = trade.pk

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except ConflictingOrder as exc:
            # Another writer took the id between the form's unique check and the save
            # (the admin's transaction rolled back): say so instead of a 500.
            self.message_user(request, f"Not added: {exc}.", messages.ERROR)
            return HttpResponseRedirect(request.path)
        except gate.TradeDenied as exc:
            # The scope was halted between the form's check and the save: nothing written.
            self.message_user(request, f"Not added: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(request.path)
        except gate.TradingStateUnavailable:
            self.message_user(request, REFUSED_UNAVAILABLE, messages.ERROR)
            return HttpResponseRedirect(request.path)


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
            ok = self._run(
                request,
                data["scope"],
                lambda actor, scope: service.halt(
                    scope,
                    reason=data["reason"],
                    actor=actor,
                    to_state=data["state"],
                    cancel_orders=data["cancel_orders"],
                ),
            )
            if ok:
                return HttpResponseRedirect(reverse("admin:ops_tradingstate_changelist"))
        return self._page(request, form, "Halt or reduce a scope", "Apply", [], None, [])

    @admin.action(description="Halt selected scopes (no new trades)")
    def halt_selected(self, request: HttpRequest, queryset: QuerySet[TradingState]):
        return self._ask(
            request,
            queryset,
            "halt_selected",
            HaltForm,
            "Halt",
            lambda data: (
                lambda actor, scope: service.halt(
                    scope, reason=data["reason"], actor=actor, cancel_orders=data["cancel_orders"]
                )
            ),
        )

    @admin.action(description="Set selected scopes to reducing-only")
    def reduce_selected(self, request: HttpRequest, queryset: QuerySet[TradingState]):
        return self._ask(
            request,
            queryset,
            "reduce_selected",
            ReasonForm,
            "Reduce only",
            lambda data: (
                lambda actor, scope: service.halt(
                    scope, reason=data["reason"], actor=actor, to_state=State.REDUCING
                )
            ),
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


@admin.register(TradingEvent)
class TradingEventAdmin(ReadOnlyAdmin):
    """The audit log: shown, never edited or deleted (the database refuses it too)."""

    list_display = (
        "created_at",
        "scope",
        "from_state",
        "to_state",
        "actor",
        "approver",
        "source",
        "origin",
        "broker_outcome",
        "reason",
    )
    list_filter = ("to_state", "source", "broker_outcome")
    search_fields = ("scope", "actor", "origin")
    date_hierarchy = "created_at"


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


@admin.register(FillBooking)
class FillBookingAdmin(ReadOnlyAdmin):
    """Fills booked past the gate: who, from where, why, and what state they went past."""

    list_display = (
        "created_at",
        "trade",
        "actor",
        "origin",
        "state_at_booking",
        "scope_at_booking",
        "reason",
    )
    list_filter = ("state_at_booking",)
    list_select_related = ("trade",)


@admin.register(BrokerCancellation)
class BrokerCancellationAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "actor",
        "source",
        "origin",
        "broker_outcome",
        "broker_attempts",
        "reason",
        "broker_detail",
    )
    list_filter = ("broker_outcome",)
