"""Records (trades, analyses) and the machine clients that submit them.

Constraints live in the database as well as in the API's validation, so that a row
written through the ORM, the admin or a shell is held to the same rules.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ops.validators import STRATEGY_PATTERN, SYMBOL_PATTERN, validate_strategy, validate_symbol


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class Signal(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"
    HOLD = "hold", "Hold"


# Up to 12 integer digits and 8 fractional ones: whole shares, fractional shares and
# crypto quantities alike, without float rounding.
MONEY = {"max_digits": 20, "decimal_places": 8}


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

    def for_token(self, token: str) -> ApiClient | None:
        return self.active().filter(token_hash=hash_token(token)).first()


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
                    scopes__regex=r"^(trades|analyses|alerts|status)(,(trades|analyses|alerts|status))*$"
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
        now = now or timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= self.LAST_USED_RESOLUTION:
            type(self).objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class TradeQuerySet(models.QuerySet):
    def demo(self) -> TradeQuerySet:
        return self.filter(client_order_id__startswith="demo-")


class Trade(models.Model):
    """An executed trade as reported by the trading engine: a record, never edited."""

    client_order_id = models.CharField(max_length=64, unique=True)
    symbol = models.CharField(max_length=10, validators=[validate_symbol])
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY)
    strategy = models.CharField(max_length=64, default="default", validators=[validate_strategy])
    executed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    api_client = models.ForeignKey(
        ApiClient, null=True, blank=True, on_delete=models.SET_NULL, related_name="trades"
    )

    objects = TradeQuerySet.as_manager()

    class Meta:
        ordering = ("-executed_at", "-id")
        indexes = [
            models.Index(fields=["-executed_at", "-id"], name="trade_executed_idx"),
            models.Index(fields=["symbol", "-executed_at"], name="trade_symbol_executed_idx"),
            models.Index(fields=["strategy", "-executed_at"], name="trade_strategy_executed_idx"),
            models.Index(fields=["side", "-executed_at"], name="trade_side_executed_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="trade_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="trade_price_positive"),
            models.CheckConstraint(condition=Q(side__in=Side.values), name="trade_side_valid"),
            models.CheckConstraint(condition=~Q(client_order_id=""), name="trade_client_order_id_set"),
            # The patterns also rule out "": a halt on symbol:AAPL must match every AAPL row.
            models.CheckConstraint(condition=Q(symbol__regex=SYMBOL_PATTERN), name="trade_symbol_valid"),
            models.CheckConstraint(
                condition=Q(strategy__regex=STRATEGY_PATTERN), name="trade_strategy_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price} ({self.client_order_id})"


class AnalysisQuerySet(models.QuerySet):
    def demo(self) -> AnalysisQuerySet:
        return self.filter(model_version__startswith="demo-")


class Analysis(models.Model):
    """A signal produced by the analysis pipeline (ML service)."""

    symbol = models.CharField(max_length=10, validators=[validate_symbol])
    signal = models.CharField(max_length=4, choices=Signal.choices)
    confidence = models.DecimalField(max_digits=5, decimal_places=4)
    model_version = models.CharField(max_length=64)
    price = models.DecimalField(**MONEY, null=True, blank=True)
    analyzed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    api_client = models.ForeignKey(
        ApiClient, null=True, blank=True, on_delete=models.SET_NULL, related_name="analyses"
    )

    objects = AnalysisQuerySet.as_manager()

    class Meta:
        ordering = ("-analyzed_at", "-id")
        verbose_name_plural = "analyses"
        indexes = [
            models.Index(fields=["-analyzed_at", "-id"], name="analysis_analyzed_idx"),
            models.Index(fields=["symbol", "-analyzed_at"], name="analysis_symbol_analyzed_idx"),
            models.Index(fields=["signal", "-analyzed_at"], name="analysis_signal_analyzed_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1), name="analysis_confidence_0_1"
            ),
            models.CheckConstraint(condition=Q(signal__in=Signal.values), name="analysis_signal_valid"),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gt=0), name="analysis_price_positive"
            ),
            models.CheckConstraint(condition=Q(symbol__regex=SYMBOL_PATTERN), name="analysis_symbol_valid"),
            models.CheckConstraint(condition=~Q(model_version=""), name="analysis_model_version_set"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.signal} ({self.confidence}) by {self.model_version}"


# The kill-switch models live with their service in ops/trading/; importing them here
# registers them with the ops app.
from ops.alerts.models import Alert  # noqa: E402
from ops.health.models import DependencyCheck, DependencyStatus, ProbeCycle  # noqa: E402
from ops.monitoring.models import MetricCounter  # noqa: E402
from ops.trading.models import (  # noqa: E402
    Position,
    ResumeRequest,
    TradingEvent,
    TradingState,
)

__all__ = [
    "Alert",
    "Analysis",
    "ApiClient",
    "DependencyCheck",
    "DependencyStatus",
    "MetricCounter",
    "Position",
    "ProbeCycle",
    "ResumeRequest",
    "Side",
    "Signal",
    "Trade",
    "TradingEvent",
    "TradingState",
]
