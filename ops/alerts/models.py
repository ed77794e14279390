"""The alert store: one row per Alertmanager alert occurrence (fingerprint + startsAt)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ops.guards import AppendOnly
from ops.trading.models import TradingEvent

# Alerts that exist to prove the chain works (the kill-switch drill's) carry this label:
# monitoring/alertmanager.yml sends them to the console only, never to a person, and the
# console never silences them or acts on them (that would hide, or turn a drill into, a
# real halt).
CONSOLE_ONLY_LABEL = "console_only"


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class AlertQuerySet(models.QuerySet):
    def firing(self) -> AlertQuerySet:
        return self.filter(status=AlertStatus.FIRING)

    def with_status(self, status: str) -> AlertQuerySet:
        """`firing`, `resolved` or `all`."""
        return self if status == "all" else self.filter(status=status)

    def newest_first(self) -> AlertQuerySet:
        return self.order_by("-starts_at", "-id")


class Alert(models.Model):
    """One occurrence of an alert. `resolved` is final: a late redelivery of the firing
    notification never reopens it; the same alert firing again has a new startsAt and so
    is a new row."""

    fingerprint = models.CharField(max_length=64)
    starts_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=AlertStatus.choices)
    ends_at = models.DateTimeField(null=True, blank=True)
    alertname = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=50, blank=True)
    summary = models.TextField(blank=True)
    description = models.TextField(blank=True)
    runbook_url = models.CharField(max_length=1000, blank=True)
    generator_url = models.CharField(max_length=2000, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    first_received_at = models.DateTimeField(default=timezone.now)
    last_received_at = models.DateTimeField(default=timezone.now)
    # Set, in the same transaction as the kill-switch change, when an ALERT_ACTIONS
    # mapping acted on this occurrence: the guard that makes it act once.
    action_taken_at = models.DateTimeField(null=True, blank=True)
    action_event = models.ForeignKey(
        TradingEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts"
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ("-starts_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["fingerprint", "starts_at"], name="alert_occurrence_unique"),
            models.CheckConstraint(condition=Q(status__in=AlertStatus.values), name="alert_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "-starts_at"], name="alert_status_starts_idx")]

    def __str__(self) -> str:
        return f"{self.alertname or self.fingerprint} {self.status} since {self.starts_at:%Y-%m-%d %H:%M:%S}"


class SilenceEvent(models.Model):
    """A silence made or expired from the console, append-only: who, when, what, why.

    Written only after Alertmanager accepted the change (ops.alerts.silences), so every
    row is something that happened; Alertmanager itself holds the silence."""

    append_only = AppendOnly()

    class Action(models.TextChoices):
        CREATED = "created", "Silenced"
        EXPIRED = "expired", "Expired early"

    created_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=8, choices=Action.choices)
    silence_id = models.CharField(max_length=36)
    actor = models.CharField(max_length=150)
    alertname = models.CharField(max_length=200, blank=True)
    # The silence's matchers as sent to (or read from) Alertmanager.
    matchers = models.JSONField(default=list)
    # The duration chosen ("1h"); empty for an expiry.
    duration = models.CharField(max_length=8, blank=True)
    # When the silence ends (created) or ended (expired early).
    ends_at = models.DateTimeField()
    # The person's reason (created) or the silence's comment (expired).
    reason = models.TextField()

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["created", "expired"]), name="silenceevent_action_valid"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="silenceevent_reason_set"),
        ]
        indexes = [models.Index(fields=["-created_at"], name="silenceevent_created_idx")]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.get_action_display()} {self.alertname} by {self.actor}"


class Heartbeat(models.Model):
    """The monitoring chain's dead man's switch: one row, updated at each delivery of the
    always-firing Watchdog alert (monitoring/alert_rules.yml). Its age says whether
    Prometheus and Alertmanager still reach the console; no row means they never did."""

    WATCHDOG = "watchdog"

    name = models.CharField(max_length=50, unique=True, default=WATCHDOG)
    first_received_at = models.DateTimeField(default=timezone.now)
    last_received_at = models.DateTimeField(default=timezone.now)
    deliveries = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: last {self.last_received_at:%Y-%m-%d %H:%M:%S}, {self.deliveries} deliveries"
