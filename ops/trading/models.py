"""Trading state per scope, its append-only audit trail, positions and resume requests."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ops.validators import STRATEGY_PATTERN, SYMBOL_PATTERN, validate_strategy, validate_symbol


class State(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    REDUCING = "REDUCING", "Reducing only"
    HALTED = "HALTED", "Halted"


# Most to least restrictive wins; the number is also the metric value (0/1/2).
SEVERITY = {State.ACTIVE: 0, State.REDUCING: 1, State.HALTED: 2}

GLOBAL_SCOPE = "global"


class TradingStateQuerySet(models.QuerySet):
    def not_active(self) -> TradingStateQuerySet:
        return self.exclude(state=State.ACTIVE)

    def for_scopes(self, scopes: list[str]) -> TradingStateQuerySet:
        return self.filter(scope__in=scopes)


class TradingState(models.Model):
    """The current state of one scope. Written only by ops.trading.service."""

    scope = models.CharField(max_length=80, unique=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    reason = models.TextField(blank=True)
    since = models.DateTimeField(default=timezone.now)
    changed_by = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=100, blank=True)

    objects = TradingStateQuerySet.as_manager()

    class Meta:
        ordering = ("scope",)
        permissions = [
            ("halt_trading", "Can halt trading or set it to reducing-only"),
            ("resume_trading", "Can resume trading (or request a resume)"),
            ("approve_resume", "Can approve another person's resume request"),
        ]
        indexes = [models.Index(fields=["state"], name="tradingstate_state_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=State.values), name="tradingstate_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}: {self.state}"

    @property
    def severity(self) -> int:
        return SEVERITY[self.state]


class TradingEventQuerySet(models.QuerySet):
    def recent(self, limit: int = 50) -> TradingEventQuerySet:
        return self.order_by("-id")[:limit]

    def for_scope(self, scope: str) -> TradingEventQuerySet:
        return self.filter(scope=scope)


class BrokerOutcome(models.TextChoices):
    NOT_REQUESTED = "not_requested", "Not requested"
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class TradingEvent(models.Model):
    """One transition, append-only: never updated except its broker outcome, once."""

    scope = models.CharField(max_length=80)
    from_state = models.CharField(max_length=8, choices=State.choices)
    to_state = models.CharField(max_length=8, choices=State.choices)
    reason = models.TextField()
    actor = models.CharField(max_length=150, help_text="Who asked: a username or system:<name>.")
    source = models.CharField(max_length=100, help_text="manual, command, rule:<name> or alert:<alertname>.")
    approver = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    broker_outcome = models.CharField(
        max_length=16, choices=BrokerOutcome.choices, default=BrokerOutcome.NOT_REQUESTED
    )
    broker_detail = models.JSONField(null=True, blank=True)

    objects = TradingEventQuerySet.as_manager()

    class Meta:
        ordering = ("-id",)
        indexes = [models.Index(fields=["scope", "-id"], name="tradingevent_scope_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="tradingevent_reason_set"),
            models.CheckConstraint(
                condition=~Q(from_state=models.F("to_state")), name="tradingevent_changes"
            ),
        ]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.scope} {self.from_state}→{self.to_state} by {self.actor}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Trading events are append-only; they are never edited.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Trading events are append-only; they are never deleted.")


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


class ResumeRequestQuerySet(models.QuerySet):
    def pending(self) -> ResumeRequestQuerySet:
        return self.filter(status=ResumeRequest.Status.PENDING, expires_at__gt=timezone.now())


class ResumeRequest(models.Model):
    """First half of a two-person resume: a supervisor asks, a different one approves."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        CANCELLED = "cancelled", "Cancelled"

    scope = models.CharField(max_length=80)
    from_state = models.CharField(max_length=8, choices=State.choices)
    to_state = models.CharField(max_length=8, choices=State.choices)
    reason = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    event = models.OneToOneField(TradingEvent, null=True, blank=True, on_delete=models.PROTECT)

    objects = ResumeRequestQuerySet.as_manager()

    class Meta:
        ordering = ("-id",)
        constraints = [models.CheckConstraint(condition=~Q(reason=""), name="resumerequest_reason_set")]

    def __str__(self) -> str:
        return f"resume {self.scope} {self.from_state}→{self.to_state} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.status == self.Status.PENDING and self.expires_at <= timezone.now()


class BrokerCancellation(models.Model):
    """A cancel-all-orders request made while the global scope was already HALTED
    (e.g. after an automatic trip), so there was no transition event to carry it."""

    actor = models.CharField(max_length=150)
    source = models.CharField(max_length=100)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    broker_outcome = models.CharField(
        max_length=16, choices=BrokerOutcome.choices, default=BrokerOutcome.PENDING
    )
    broker_detail = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ("-id",)

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} cancel all orders by {self.actor}: {self.broker_outcome}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError(
                "Broker cancellations are append-only; only their outcome is recorded, by update."
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Broker cancellations are append-only; they are never deleted.")
