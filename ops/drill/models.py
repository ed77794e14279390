"""The evidence of each kill-switch drill: who started it, every stage with its timings."""

from __future__ import annotations

from django.db import models
from django.db.models import Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from ops.guards import AppendOnly


class Outcome(models.TextChoices):
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    # Stood down: a real scope went HALTED mid-drill. Neither passed nor failed.
    ABORTED = "aborted", "Aborted (a real halt)"


class DrillRunQuerySet(models.QuerySet):
    def finished(self) -> DrillRunQuerySet:
        return self.exclude(outcome=Outcome.RUNNING)

    def verdicts(self) -> DrillRunQuerySet:
        """The runs that say whether the kill switch works: passed or failed."""
        return self.filter(outcome__in=(Outcome.PASSED, Outcome.FAILED))

    def last_finished(self) -> DrillRun | None:
        return self.finished().order_by("-started_at", "-id").first()

    def last_outcome(self) -> dict | None:
        """The last verdict's end and outcome, and when a drill last passed: one query per
        scrape. None until a drill has passed or failed (an aborted run is no verdict)."""
        newest_passed = self.filter(outcome=Outcome.PASSED).order_by("-started_at", "-id")
        last_success = Coalesce(
            Subquery(newest_passed.values("ended_at")[:1]),
            # Never passed: counted from the first drill, so a drill that has always
            # failed still becomes overdue (besides KillSwitchDrillFailed).
            Subquery(self.order_by("started_at").values("started_at")[:1]),
        )
        return (
            self.verdicts()
            .order_by("-started_at", "-id")
            .annotate(
                ended=Coalesce("ended_at", "started_at"),
                last_success=last_success,
            )
            .values("ended", "outcome", "last_success")
            .first()
        )


class DrillRun(models.Model):
    """One drill. `stages` is a list of {name, started, ended, duration_s, outcome
    (passed/failed/skipped), detail, observed}, in the order they ran.

    Evidence for an auditor: never deleted, and who started it, from where and when never
    change; the row is inserted as "running" (so two drills cannot overlap) and its result
    written once at the end.
    """

    append_only = AppendOnly(mutable=("ended_at", "outcome", "failed_stage", "failure", "stages"))

    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.RUNNING)
    started_by = models.CharField(max_length=150, help_text="A username, or system:<name> for the schedule.")
    origin = models.CharField(max_length=200, help_text="web (the console), cli <login>@<host>, or beat.")
    failed_stage = models.CharField(max_length=40, blank=True)
    failure = models.TextField(blank=True, help_text="Which stage failed and why, in words.")
    stages = models.JSONField(default=list)

    objects = DrillRunQuerySet.as_manager()

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [models.Index(fields=["outcome", "-started_at"], name="drillrun_outcome_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="drillrun_outcome_valid"),
        ]

    def __str__(self) -> str:
        return f"drill {self.started_at:%Y-%m-%d %H:%M:%S} {self.outcome}"

    def stage(self, name: str) -> dict | None:
        return next((stage for stage in self.stages if stage["name"] == name), None)

    @property
    def halt_to_alert_seconds(self) -> float | None:
        """From the halt's commit to the alert at the webhook: the figure people ask for."""
        halt, alert = self.stage("halt"), self.stage("alert_arrives")
        if not (halt and alert and alert["outcome"] == "passed"):
            return None
        return alert["observed"].get("seconds_since_halt")

    def as_json(self) -> dict:
        return {
            "id": self.pk,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "outcome": self.outcome,
            "started_by": self.started_by,
            "origin": self.origin,
            "failed_stage": self.failed_stage,
            "failure": self.failure,
            "stages": self.stages,
        }
