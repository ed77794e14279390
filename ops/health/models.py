"""Dependency health: one current row per dependency and an append-only history."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Health(models.TextChoices):
    UP = "up", "Up"
    DOWN = "down", "Down"
    NOT_CONFIGURED = "not_configured", "Not configured"
    UNKNOWN = "unknown", "Unknown (stale)"


def stale_after() -> timedelta:
    # Three missed cycles: one late beat is noise, three mean the checks stopped.
    return timedelta(seconds=3 * settings.PROBE_INTERVAL_SECONDS)


class DependencyStatus(models.Model):
    name = models.CharField(max_length=32, unique=True)
    status = models.CharField(max_length=16, choices=Health.choices)
    latency_ms = models.FloatField()
    detail = models.TextField(blank=True)
    checked_at = models.DateTimeField()
    consecutive_failures = models.PositiveIntegerField(default=0)
    # When `status` last changed (written with it, under the row lock): "down since".
    status_since = models.DateTimeField(default=timezone.now)
    # True once this outage has tripped trading (set in the same transaction as the
    # halt), False again when the dependency is back. So each outage trips once: a
    # failed trip is retried next cycle, and a person who resumed is not overruled.
    tripped = models.BooleanField(default=False)

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "dependency statuses"

    def __str__(self) -> str:
        return f"{self.name}: {self.effective_status()}"

    def effective_status(self, now: datetime | None = None) -> str:
        """The status as it may be shown: UNKNOWN once it is too old to trust."""
        if self.checked_at < (now or timezone.now()) - stale_after():
            return Health.UNKNOWN
        return self.status


class DependencyCheckQuerySet(models.QuerySet):
    def older_than(self, cutoff: datetime) -> DependencyCheckQuerySet:
        return self.filter(checked_at__lt=cutoff)


class DependencyCheck(models.Model):
    """One probe result, kept DEPENDENCY_HISTORY_DAYS for after-the-fact questions."""

    name = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Health.choices)
    latency_ms = models.FloatField()
    detail = models.TextField(blank=True)
    checked_at = models.DateTimeField()

    objects = DependencyCheckQuerySet.as_manager()

    class Meta:
        ordering = ("-checked_at", "-id")
        indexes = [
            models.Index(fields=["checked_at"], name="depcheck_checked_idx"),
            models.Index(fields=["name", "-checked_at"], name="depcheck_name_checked_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.checked_at:%Y-%m-%d %H:%M:%S} {self.name} {self.status}"


class ProbeCycle(models.Model):
    """One row: when the last periodic probe cycle started (compare-and-set guard)."""

    started_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"last probe cycle {self.started_at:%Y-%m-%d %H:%M:%S}"
