"""API clients in the admin: issue a token (shown once), choose scopes, revoke."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from ops.api.models import DEFAULT_SCOPES, ApiClient, Scope, normalize_scopes


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
        if not change:
            # Only its hash is stored. The plaintext stays on this request's instance until
            # response_add() puts it in the response body.
            obj.issued_token = obj.set_new_token()
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiClient, post_url_continue: str | None = None):
        """The token page is the answer to the add itself, not a redirect to a page that
        shows a message: the plaintext token must never leave the server except in this
        one response body. A message goes through the message storage (a signed, not
        encrypted, cookie by default), and a redirect target would need the token kept
        somewhere (session, cache) until the next request. The admin's views are
        never_cache, so the page is not stored by the browser either; reloading it
        re-posts the form, which the taken name refuses: no second token."""
        context = {
            **self.admin_site.each_context(request),
            "title": f"Token for {obj.name}",
            "opts": self.opts,
            "client": obj,
            "token": obj.issued_token,
        }
        return TemplateResponse(request, "admin/ops/apiclient/token_issued.html", context)

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
