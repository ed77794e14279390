"""Trading state per scope, its append-only audit trail, resume requests and broker cancellations."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ops.guards import AppendOnly
from ops.validators import DRILL_STRATEGY


class State(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    REDUCING = "REDUCING", "Reducing only"
    HALTED = "HALTED", "Halted"


# Most to least restrictive wins; the number is also the metric value (0/1/2).
SEVERITY = {State.ACTIVE: 0, State.REDUCING: 1, State.HALTED: 2}

GLOBAL_SCOPE = "global"
# The kill-switch drill's own scope (ops.drill): no real order can name its strategy
# (ops.validators reserves it), so halting it stops nothing real.
DRILL_SCOPE = f"strategy:{DRILL_STRATEGY}"


class TradingStateQuerySet(models.QuerySet):
    def not_active(self) -> TradingStateQuerySet:
        return self.exclude(state=State.ACTIVE)

    def real(self) -> TradingStateQuerySet:
        """Every scope but the drill's own (its halt stops no real order)."""
        return self.exclude(scope=DRILL_SCOPE)

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
            ("book_fill", "Can book a fill that already happened at the broker, past the gate"),
            ("silence_alerts", "Can silence a firing alert in Alertmanager, or expire a silence"),
            ("run_drill", "Can run the kill-switch drill (on the drill scope only)"),
        ]
        indexes = [models.Index(fields=["state"], name="tradingstate_state_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=State.values), name="tradingstate_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}: {self.state}"


class BrokerOutcome(models.TextChoices):
    NOT_REQUESTED = "not_requested", "Not requested"
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


ORIGIN_HELP = "Where it came from: admin or web (a login session), cli <os-login>@<host> (a shell), system."


class BrokerOutboxQuerySet(models.QuerySet):
    """Rows whose cancel-all-orders call is owed to the broker (ops.trading.broker)."""

    def pending(self) -> BrokerOutboxQuerySet:
        return self.filter(broker_outcome=BrokerOutcome.PENDING)

    def stale(self, before: datetime) -> BrokerOutboxQuerySet:
        """Pending and untouched since `before`: its task was lost (a crash, a flushed queue)."""
        last_touched = Coalesce("broker_attempted_at", "created_at")
        return self.pending().alias(last_touched=last_touched).filter(last_touched__lt=before)


class BrokerOutbox(models.Model):
    """The outbox half of a row that asked for its broker orders to be cancelled.

    The call runs in a Celery task queued on commit, retried with backoff, and swept up
    by beat if the task is lost; the outcome is written once, from PENDING.
    """

    broker_outcome = models.CharField(
        max_length=16, choices=BrokerOutcome.choices, default=BrokerOutcome.NOT_REQUESTED
    )
    broker_detail = models.JSONField(null=True, blank=True)
    broker_attempts = models.PositiveSmallIntegerField(default=0)
    broker_attempted_at = models.DateTimeField(null=True, blank=True)

    # The columns written after the insert (ops.trading.broker); an append-only row with
    # this outbox may change these and nothing else.
    OUTBOX_COLUMNS = ("broker_outcome", "broker_detail", "broker_attempts", "broker_attempted_at")

    objects = BrokerOutboxQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def broker_summary(self) -> str:
        """What a person is told: the outcome, or that it is still owed and retried."""
        detail = self.broker_detail or {}
        if self.broker_outcome == BrokerOutcome.PENDING:
            tried = f" after {self.broker_attempts} attempt(s), last: {detail['error']}" if detail else ""
            return f"pending{tried}; it will be retried and recorded on this row"
        if self.broker_outcome == BrokerOutcome.SUCCEEDED:
            return f"succeeded, {len(detail.get('cancelled', []))} order(s) cancelled"
        if self.broker_outcome == BrokerOutcome.FAILED:
            failed = detail.get("error") or f"orders not cancelled: {detail.get('failed')}"
            return f"failed ({failed})"
        return "not requested"


class TradingEventQuerySet(BrokerOutboxQuerySet):
    def recent(self, limit: int = 50) -> TradingEventQuerySet:
        return self.order_by("-id")[:limit]

    def for_scope(self, scope: str) -> TradingEventQuerySet:
        return self.filter(scope=scope)


class TradingEvent(BrokerOutbox):
    """One transition, append-only: never deleted, never updated but for its broker outcome."""

    append_only = AppendOnly(mutable=BrokerOutbox.OUTBOX_COLUMNS)

    scope = models.CharField(max_length=80)
    from_state = models.CharField(max_length=8, choices=State.choices)
    to_state = models.CharField(max_length=8, choices=State.choices)
    reason = models.TextField()
    actor = models.CharField(max_length=150, help_text="Who asked: a username or system:<name>.")
    source = models.CharField(max_length=100, help_text="manual, command, rule:<name> or alert:<alertname>.")
    approver = models.CharField(max_length=150, blank=True)
    origin = models.CharField(max_length=200, blank=True, help_text=ORIGIN_HELP)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TradingEventQuerySet.as_manager()

    class Meta:
        ordering = ("-id",)
        indexes = [
            models.Index(fields=["scope", "-id"], name="tradingevent_scope_idx"),
            # Partial: the scrape-time gauge and the sweep read only the few pending rows.
            models.Index(
                fields=["broker_outcome"],
                condition=Q(broker_outcome=BrokerOutcome.PENDING),
                name="tradingevent_broker_pending",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="tradingevent_reason_set"),
            models.CheckConstraint(
                condition=~Q(from_state=models.F("to_state")), name="tradingevent_changes"
            ),
        ]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.scope} {self.from_state}→{self.to_state} by {self.actor}"


class ResumeRequestQuerySet(models.QuerySet):
    def open(self) -> ResumeRequestQuerySet:
        """Not yet approved or cancelled (possibly expired)."""
        return self.filter(status=ResumeRequest.Status.PENDING)

    def pending(self) -> ResumeRequestQuerySet:
        """Open and not expired: what may still be approved."""
        return self.open().filter(expires_at__gt=timezone.now())


class ResumeRequest(models.Model):
    """First half of a two-person resume: a supervisor asks, a different one approves."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        # Ended by a later transition of its scope (a direct resume, a newer halt).
        CANCELLED = "cancelled", "Cancelled by a later transition"

    scope = models.CharField(max_length=80)
    from_state = models.CharField(max_length=8, choices=State.choices)
    to_state = models.CharField(max_length=8, choices=State.choices)
    reason = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    origin = models.CharField(max_length=200, blank=True, help_text=ORIGIN_HELP)
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

    @property
    def shown_status(self) -> str:
        """The status a person needs: an expired request is not "pending" any more."""
        return "expired" if self.is_expired else self.get_status_display()


class BrokerCancellation(BrokerOutbox):
    """A cancel-all-orders request made while the global scope was already HALTED
    (e.g. after an automatic trip), so there was no transition event to carry it."""

    append_only = AppendOnly(mutable=BrokerOutbox.OUTBOX_COLUMNS)

    actor = models.CharField(max_length=150)
    source = models.CharField(max_length=100)
    origin = models.CharField(max_length=200, blank=True, help_text=ORIGIN_HELP)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    broker_outcome = models.CharField(
        max_length=16, choices=BrokerOutcome.choices, default=BrokerOutcome.PENDING
    )

    class Meta:
        ordering = ("-id",)
        indexes = [
            models.Index(
                fields=["broker_outcome"],
                condition=Q(broker_outcome=BrokerOutcome.PENDING),
                name="brokercancel_broker_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} cancel all orders by {self.actor}: {self.broker_outcome}"


class FillBooking(models.Model):
    """The audit of a fill booked past the gate: it had already happened at the broker
    (say, an order placed before a halt and filled after it), so refusing it would only
    make the books disagree with the broker. Written with its trade, append-only."""

    append_only = AppendOnly()

    trade = models.OneToOneField("ops.Trade", on_delete=models.PROTECT, related_name="booking")
    actor = models.CharField(max_length=150)
    origin = models.CharField(max_length=200, help_text=ORIGIN_HELP)
    reason = models.TextField()
    # What the gate would have said: the state this booking went past.
    state_at_booking = models.CharField(max_length=8, choices=State.choices)
    scope_at_booking = models.CharField(max_length=80)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-id",)
        constraints = [models.CheckConstraint(condition=~Q(reason=""), name="fillbooking_reason_set")]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} fill {self.trade_id} booked by {self.actor} ({self.state_at_booking})"
