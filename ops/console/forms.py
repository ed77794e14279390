"""The console's forms: every field validated here, so the views only translate results."""

from __future__ import annotations

from django import forms

from ops.trading.models import GLOBAL_SCOPE, State
from ops.trading.scopes import InvalidScope, parse_scope
from ops.trading.service import MAX_REASON

CONFIRM_WORD = "HALT"
RESUME_WORD = "RESUME"
GLOBAL_WITH_NAME = (
    "Global covers everything and takes no name: pick Strategy or Symbol for {name!r}, or clear the name."
)


class ScopeWidget(forms.MultiWidget):
    def decompress(self, value: str | None) -> list[str]:
        kind, _, name = (value or GLOBAL_SCOPE).partition(":")
        return [kind, name]


class ScopeField(forms.MultiValueField):
    """A scope picker: the kind (global, strategy, symbol) and, unless global, a name."""

    KINDS = [(GLOBAL_SCOPE, "Global (everything)"), ("strategy", "Strategy"), ("symbol", "Symbol")]

    def __init__(self, **kwargs) -> None:
        fields = (forms.ChoiceField(choices=self.KINDS), forms.CharField(required=False, max_length=70))
        widget = ScopeWidget(
            widgets=[
                forms.Select(choices=self.KINDS, attrs={"aria-label": "Scope kind"}),
                forms.TextInput(
                    attrs={
                        "placeholder": "name, e.g. momentum or AAPL",
                        "aria-label": "Strategy name or symbol",
                    }
                ),
            ]
        )
        super().__init__(fields=fields, widget=widget, require_all_fields=False, **kwargs)

    def compress(self, data_list: list[str]) -> str:
        kind, name = [*data_list, "", ""][:2]
        if kind == GLOBAL_SCOPE:
            if name.strip():
                # The page disables the box for Global; a name here means the person meant
                # a narrower scope, and silently widening it to everything is the worst guess.
                raise forms.ValidationError(GLOBAL_WITH_NAME.format(name=name.strip()))
            return GLOBAL_SCOPE
        if not name:
            raise forms.ValidationError(f"Give the {kind or 'scope'} name (or pick Global).")
        try:
            return parse_scope(f"{kind}:{name}")
        except InvalidScope as exc:
            raise forms.ValidationError(str(exc)) from None


class ReasonField(forms.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2}))
        super().__init__(
            max_length=MAX_REASON,
            help_text="Required: why, for whoever reads the timeline at 3 a.m.",
            **kwargs,
        )


class HaltForm(forms.Form):
    prefix = "halt"  # both forms share a page: distinct field ids and names
    scope = ScopeField(label="Scope")
    state = forms.ChoiceField(
        label="New state",
        choices=[
            (State.HALTED, "HALTED: no new trades"),
            (State.REDUCING, "REDUCING: only trades that shrink a position"),
        ],
        initial=State.HALTED,
    )
    reason = ReasonField(label="Reason")
    cancel_orders = forms.BooleanField(
        required=False, label="Also cancel all open orders at the broker (global only)"
    )
    confirm = forms.CharField(
        required=False,
        max_length=10,
        label=f"Type {CONFIRM_WORD} to confirm a change to global",
        help_text="Needed for any global change: it restricts every trade on every strategy.",
    )

    def clean(self) -> dict:
        data = super().clean()
        scope = data.get("scope")
        if data.get("cancel_orders") and scope and scope != GLOBAL_SCOPE:
            self.add_error(
                "cancel_orders", "Cancelling open orders is account-wide: only with a global halt or reduce."
            )
        if scope == GLOBAL_SCOPE and (data.get("confirm") or "").strip().upper() != CONFIRM_WORD:
            self.add_error(
                "confirm",
                f"Changing global to {data.get('state') or 'a new state'} restricts every trade: "
                f"type {CONFIRM_WORD} to confirm.",
            )
        return data


class ResumeForm(forms.Form):
    prefix = "resume"
    scope = ScopeField(label="Scope")
    state = forms.ChoiceField(
        label="New state",
        choices=[
            (State.ACTIVE, "ACTIVE: trading resumes"),
            (State.REDUCING, "REDUCING: only reducing trades"),
        ],
        initial=State.ACTIVE,
    )
    reason = ReasonField(label="Reason")
    confirm = forms.CharField(
        required=False,
        max_length=10,
        label=f"Type {RESUME_WORD} to confirm a change to global",
        help_text="Needed for any global change: it loosens every strategy and symbol at once.",
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("scope") == GLOBAL_SCOPE and (data.get("confirm") or "").strip().upper() != RESUME_WORD:
            self.add_error(
                "confirm", f"A global resume loosens every trade at once: type {RESUME_WORD} to confirm."
            )
        return data
