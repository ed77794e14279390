"""Business counters kept in the database, so every process and host reports one truth."""

from __future__ import annotations

from django.db import models
from django.db.models import Sum


class MetricCounterQuerySet(models.QuerySet):
    def totals(self, name: str) -> dict[str, int]:
        """label -> total over the shards; reads at most SHARDS rows per label."""
        return self.filter(name=name).all_totals().get(name, {})

    def all_totals(self) -> dict[str, dict[str, int]]:
        """name -> label -> total, in one grouped query (what a scrape needs)."""
        rows = self.values("name", "label").annotate(total=Sum("value")).order_by("name", "label")
        totals: dict[str, dict[str, int]] = {}
        for row in rows:
            totals.setdefault(row["name"], {})[row["label"]] = int(row["total"])
        return totals


class MetricCounter(models.Model):
    """A monotonic counter, incremented by database triggers on INSERT (migration 0005).

    Why triggers: every way a row can be created (API, admin, shell, Celery task,
    seed_demo, even raw SQL) counts, in the same transaction as the row, and a
    rolled-back insert counts nothing. Why shards: a trade bumps shard id % SHARDS, so
    concurrent inserts rarely wait on the same counter row. A scrape reads at most
    SHARDS rows per label whatever the table sizes: O(1) in the number of trades.

    Reset: only by deleting these rows (documented in the README); Prometheus treats
    the drop as a counter reset. Deleting trades never decrements.
    """

    SHARDS = 16
    SEPARATOR = "|"  # joins multi-label values, e.g. "HALTED|manual"

    name = models.CharField(max_length=64)
    label = models.CharField(max_length=200)
    shard = models.PositiveSmallIntegerField()
    value = models.BigIntegerField(default=0)

    objects = MetricCounterQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "label", "shard"], name="metriccounter_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name}{{{self.label}}}[{self.shard}] = {self.value}"
