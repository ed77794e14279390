"""Trades in the admin: added by hand through the pre-trade gate, or booked past it as a
broker fill (supervisors, audited)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ops.admin_base import LargeTableAdmin
from ops.records.intake import ConflictingOrder, TradeOrder
from ops.records.models import Trade
from ops.trading import gate, service
from ops.trading.errors import TradingStateError
from ops.trading.roles import role_needed

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
