"""Drill runs in the admin: read-only evidence, exportable as JSON or CSV for an auditor."""

from __future__ import annotations

import csv
import json

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from ops.admin_base import ReadOnlyAdmin
from ops.drill.models import DrillRun

CSV_COLUMNS = (
    "run_id",
    "run_started_at",
    "run_outcome",
    "started_by",
    "origin",
    "stage",
    "stage_started",
    "stage_ended",
    "duration_s",
    "deadline_s",
    "stage_outcome",
    "detail",
    "observed",
)


@admin.register(DrillRun)
class DrillRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "outcome", "started_by", "origin", "halt_to_alert", "failure")
    list_filter = ("outcome",)
    date_hierarchy = "started_at"
    readonly_fields = (
        "started_at",
        "ended_at",
        "outcome",
        "started_by",
        "origin",
        "failed_stage",
        "failure",
        "stages_json",
    )
    exclude = ("stages",)
    actions = ("export_json", "export_csv")

    @admin.display(description="halt → alert")
    def halt_to_alert(self, run: DrillRun) -> str:
        seconds = run.halt_to_alert_seconds
        return "—" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description="stages")
    def stages_json(self, run: DrillRun) -> str:
        return json.dumps(run.stages, indent=2)

    # Exporting reads; the read-only admin allows only the view permission.
    @admin.action(description="Export selected drill runs as JSON", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        body = json.dumps(
            {"drill_runs": [run.as_json() for run in queryset.order_by("started_at")]}, indent=2
        )
        return _download(body, "application/json", "drill-runs.json")

    @admin.action(description="Export selected drill runs as CSV (one row per stage)", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        response = _download("", "text/csv; charset=utf-8", "drill-runs.csv")
        writer = csv.writer(response)
        writer.writerow(CSV_COLUMNS)
        for run in queryset.order_by("started_at"):
            for stage in run.stages:
                writer.writerow(
                    [
                        run.pk,
                        run.started_at.isoformat(),
                        run.outcome,
                        run.started_by,
                        run.origin,
                        stage["name"],
                        stage["started"],
                        stage["ended"],
                        stage["duration_s"],
                        stage["deadline_s"],
                        stage["outcome"],
                        stage["detail"],
                        json.dumps(stage["observed"]),
                    ]
                )
        return response


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
