"""Records: executed trades, analyses and the net position they add up to.

Constraints live in the database as well as in the API's validation, so that a row
written through the ORM, the admin or a shell is held to the same rules. Nothing here
imports the trading, API, alerts or health packages: they build on records, never the
reverse (ops/tests/test_layout.py holds that).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ops.validators import (
    STRATEGY_PATTERN,
    SYMBOL_PATTERN,
    storable_decimal,
    validate_strategy,
    validate_symbol,
)


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


class TradeQuerySet(models.QuerySet):
    def demo(self) -> TradeQuerySet:
        return self.filter(client_order_id__startswith="demo-")


class Trade(models.Model):
    """An executed trade as reported by the trading engine: a record, never edited."""

    client_order_id = models.CharField(max_length=64, unique=True)
    symbol = models.CharField(max_length=10, validators=[validate_symbol])
    side = models.CharField(max_length=4, choices=Side.choices)
    # storable_decimal: every form that writes one (API, admin) refuses what SQLite would alter.
    quantity = models.DecimalField(**MONEY, validators=[storable_decimal])
    price = models.DecimalField(**MONEY, validators=[storable_decimal])
    strategy = models.CharField(max_length=64, default="default", validators=[validate_strategy])
    executed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    # By name: records do not import the API package (it imports them).
    api_client = models.ForeignKey(
        "ops.ApiClient", null=True, blank=True, on_delete=models.SET_NULL, related_name="trades"
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
    price = models.DecimalField(**MONEY, null=True, blank=True, validators=[storable_decimal])
    analyzed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    api_client = models.ForeignKey(
        "ops.ApiClient", null=True, blank=True, on_delete=models.SET_NULL, related_name="analyses"
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


class Position(models.Model):
    """Net position per (strategy, symbol), updated in the same transaction as each trade.

    Kept as a row so the REDUCING check reads one locked row instead of summing trades.
    """

    strategy = models.CharField(max_length=64, validators=[validate_strategy])
    symbol = models.CharField(max_length=10, validators=[validate_symbol])
    # Wider than a single trade's quantity, so no sum of valid trades can overflow it.
    quantity = models.DecimalField(
        max_digits=32, decimal_places=8, default=0, help_text="Signed: long > 0, short < 0."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("strategy", "symbol")
        constraints = [
            models.UniqueConstraint(fields=["strategy", "symbol"], name="position_unique"),
            models.CheckConstraint(condition=Q(symbol__regex=SYMBOL_PATTERN), name="position_symbol_valid"),
            models.CheckConstraint(
                condition=Q(strategy__regex=STRATEGY_PATTERN), name="position_strategy_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy}/{self.symbol}: {self.quantity}"
