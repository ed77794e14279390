from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect

from ops.models import DEFAULT_SCOPES, Analysis, ApiClient, Scope, Trade, normalize_scopes
from ops.paginators import LargeTablePaginator
from ops.records import ConflictingOrder, TradeOrder
from ops.trading import gate


class LargeTableAdmin(admin.ModelAdmin):
    """Changelists that stay fast at millions of rows (see LargeTablePaginator)."""

    paginator = LargeTablePaginator
    show_full_result_count = False
    list_per_page = 50
    # Exact, index-backed matches only: icontains over millions of rows is a seq scan.
    exact_search_fields: tuple[str, ...] = ()
    upper_case_search_fields: tuple[str, ...] = ()
    search_help_text = "Exact match."

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q()
        for name in self.exact_search_fields:
            match |= Q(**{name: term.upper() if name in self.upper_case_search_fields else term})
        return queryset.filter(match), False


GATE_NOTE = (
    "A trade added here passes the pre-trade gate like one from the API: it is refused "
    "while its scope is HALTED, and while REDUCING unless it shrinks the position."
)


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


@admin.register(Analysis)
class AnalysisAdmin(LargeTableAdmin):
    list_display = ("analyzed_at", "symbol", "signal", "confidence", "model_version", "price")
    list_filter = ("signal", "analyzed_at")
    date_hierarchy = "analyzed_at"
    search_fields = ("symbol", "model_version")
    exact_search_fields = ("symbol", "model_version")
    upper_case_search_fields = ("symbol",)
    search_help_text = "Exact symbol or model version."
    raw_id_fields = ("api_client",)

    # Analyses are the pipeline's output as it was; like trades, they are not edited.
    def get_readonly_fields(self, request: HttpRequest, obj: Analysis | None = None):
        return [field.name for field in Analysis._meta.fields] if obj else ()

    def has_change_permission(self, request: HttpRequest, obj: Analysis | None = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Analysis | None = None) -> bool:
        return False


class ApiClientForm(forms.ModelForm):
    """Scopes as checkboxes; stored as the canonical comma-separated text."""

    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=DEFAULT_SCOPES.split(","),
        help_text="What this token may do. Alertmanager needs only 'alerts'.",
    )

    class Meta:
        model = ApiClient
        fields = ("name", "scopes")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["scopes"] = self.instance.scopes.split(",")

    def clean_scopes(self) -> str:
        return normalize_scopes(self.cleaned_data["scopes"])


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ("name", "token_hint", "scopes", "is_active", "created_at", "last_used_at", "revoked_at")
    list_filter = ("is_active",)
    search_fields = ("name",)
    readonly_fields = ("token_hint", "is_active", "created_at", "last_used_at", "revoked_at")
    fields = ("name", "scopes", "token_hint", "is_active", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def save_model(self, request: HttpRequest, obj: ApiClient, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token = obj.set_new_token()
        super().save_model(request, obj, form, change)
        # The only time the token is ever shown: only its hash is kept.
        messages.warning(request, f"Token for {obj.name} (copy it now, it will not be shown again): {token}")

    def has_delete_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        # Revoke instead: the client stays visible as the author of its trades.
        return False

    @admin.action(description="Revoke selected clients' tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        revoked = 0
        for client in queryset.filter(is_active=True):
            client.revoke()
            revoked += 1
        self.message_user(request, f"Revoked {revoked} client(s).", messages.SUCCESS)


from ops.alerts import admin as alerts_admin  # noqa: E402, F401 - registers the alert store admin
from ops.health import admin as health_admin  # noqa: E402, F401 - registers the dependency admin
from ops.trading import admin as trading_admin  # noqa: E402, F401 - registers the kill-switch admin
