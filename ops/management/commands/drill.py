from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ops.drill.models import Outcome
from ops.drill.service import DrillRefused, DrillUnavailable, run_drill
from ops.trading import service


class Command(BaseCommand):
    help = (
        "Run one kill-switch drill on the drill scope (strategy:__drill__) only: halt it, check "
        "the gate refuses, /metrics shows it, (DRILL_ALERTS) the alert reaches the webhook, resume, "
        "and (DRILL_ALERTS) the resolution arrives. Stores the run; exits non-zero on failure."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the stored record as JSON."
        )

    def handle(self, *args, as_json: bool = False, **options) -> None:
        # Only the drill scope can be touched (ops.trading.service.drill_transition), so
        # anyone with this shell may drill; the OS login and host are recorded.
        origin = service.shell_origin()
        actor = service.Actor(
            name=f"system:drill ({origin})",
            system_permissions=frozenset({service.RUN_DRILL}),
            origin=origin,
        )
        try:
            run = run_drill(actor=actor, started_by=origin, origin=origin)
        except (DrillRefused, DrillUnavailable) as exc:
            raise CommandError(f"Drill not run: {exc}") from None
        if as_json:
            self.stdout.write(json.dumps(run.as_json(), indent=2))
        else:
            for stage in run.stages:
                style = {"passed": self.style.SUCCESS, "failed": self.style.ERROR}.get(
                    stage["outcome"], self.style.WARNING
                )
                self.stdout.write(
                    style(f"{stage['outcome'].upper():7}")
                    + f" {stage['name']:20} {stage['duration_s']:7.3f} s  {stage['detail']}"
                )
        if run.outcome == Outcome.ABORTED:
            raise CommandError(f"Drill #{run.pk} {run.failure} (aborted: neither passed nor failed)")
        if run.outcome != Outcome.PASSED:
            raise CommandError(f"Drill #{run.pk} FAILED at {run.failure}")
        if not as_json:
            self.stdout.write(self.style.SUCCESS(f"Drill #{run.pk} passed."))
