"""Machine clients of the API and their bearer tokens (stored hashed), with scopes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import connections, models
from django.db.models import Q
from django.utils import timezone


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is enough (no dictionary to
    # attack) and lets the lookup be an indexed equality.
    return hashlib.sha256(token.encode()).hexdigest()


class Scope(models.TextChoices):
    """What a token may do; each API endpoint needs one of these."""

    TRADES = "trades", "Submit trades (the pre-trade gate)"
    ANALYSES = "analyses", "Record analyses"
    ALERTS = "alerts", "Deliver Alertmanager notifications"
    STATUS = "status", "Read the trading status and the alert store"


DEFAULT_SCOPES = "trades,analyses,status"


def normalize_scopes(value: str | list[str]) -> str:
    """Canonical text for a set of scopes (declaration order); ValueError on unknown ones."""
    names = value.split(",") if isinstance(value, str) else value
    wanted = {name.strip() for name in names if name.strip()}
    unknown = wanted - set(Scope.values)
    if unknown:
        raise ValueError(f"Unknown scope(s): {', '.join(sorted(unknown))}; use {', '.join(Scope.values)}.")
    if not wanted:
        raise ValueError(f"Give at least one scope of {', '.join(Scope.values)}.")
    return ",".join(scope for scope in Scope.values if scope in wanted)


def validate_scopes(value: str) -> None:
    from django.core.exceptions import ValidationError

    try:
        if normalize_scopes(value) != value:
            raise ValidationError(
                "Scopes must be comma-separated, without repeats, in the order trades, "
                "analyses, alerts, status."
            )
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class ApiClientQuerySet(models.QuerySet):
    def active(self) -> ApiClientQuerySet:
        return self.filter(is_active=True)

    def touch(self, pk: int, last_used_at: datetime | None, now: datetime | None = None) -> datetime | None:
        """Record a use of client `pk`, whose last one is stored as `last_used_at`: written
        at most once per LAST_USED_RESOLUTION. Returns what is stored now."""
        now = now or timezone.now()
        if last_used_at is None or now - last_used_at >= self.model.LAST_USED_RESOLUTION:
            self.filter(pk=pk).update(last_used_at=now)
            return now
        return last_used_at

    def for_token(self, token: str) -> ApiClient | None:
        """The active client holding `token`, read fresh on every call (a revocation
        takes effect on the very next request), or None.

        One hand-written SELECT rather than .filter().first(): every API request but an
        accepted trade on Postgres runs this (the gate finds its client itself,
        ops.api.auth.Credentials.sender()), and building the ORM query cost 1.4M of the trade request's 5.6M
        instructions (bench/gate_cost.py, P3 in docs/benchmarks.md). token_hash is
        unique, so no ORDER BY or LIMIT is needed to get at most one row.
        """
        model, connection = self.model, connections[self.db]
        fields = model._meta.concrete_fields
        table = model._meta.db_table
        columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {connection.ops.quote_name(table)} "  # noqa: S608 - names from the model
                "WHERE token_hash = %s AND is_active",
                [hash_token(token)],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        # What the ORM would do to each column (SQLite returns datetimes as text, for one).
        values = list(row)
        for index, field in enumerate(fields):
            column = field.get_col(table)
            for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
                values[index] = convert(values[index], column, connection)
        return model.from_db(self.db, [field.attname for field in fields], values)


class ApiClient(models.Model):
    """A machine client of the API (the trading engine, Alertmanager, ...)."""

    TOKEN_PREFIX = "iq_"  # noqa: S105 - a public prefix, not a secret
    # last_used_at is a courtesy for operators, not an audit trail: write it at most
    # once a minute so the trade gate does not pay an UPDATE on every request.
    LAST_USED_RESOLUTION = timedelta(minutes=1)

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(
        max_length=12, editable=False, help_text="First characters of the token, to recognise it."
    )
    is_active = models.BooleanField(default=True)
    scopes = models.CharField(
        max_length=64,
        default=DEFAULT_SCOPES,
        validators=[validate_scopes],
        help_text="Comma-separated: trades, analyses, alerts, status.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiClientQuerySet.as_manager()

    class Meta:
        ordering = ("name",)
        verbose_name = "API client"
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    scopes__regex=r"\A(trades|analyses|alerts|status)(,(trades|analyses|alerts|status))*\Z"
                ),
                name="apiclient_scopes_known",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_hint}…)" if self.is_active else f"{self.name} (revoked)"

    def set_new_token(self) -> str:
        """Give the client a fresh token and return it; only its hash is stored."""
        token = self.TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        self.token_hint = token[:10]
        return token

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes.split(",")

    @classmethod
    def issue(cls, name: str, scopes: str = DEFAULT_SCOPES) -> tuple[ApiClient, str]:
        client = cls(name=name, scopes=normalize_scopes(scopes))
        token = client.set_new_token()
        client.save()
        return client, token

    def revoke(self) -> None:
        self.is_active = False
        self.revoked_at = timezone.now()
        self.save(update_fields=["is_active", "revoked_at"])

    def touch(self, now: datetime | None = None) -> None:
        self.last_used_at = type(self).objects.touch(self.pk, self.last_used_at, now)
