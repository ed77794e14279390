from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ops.health.models import DependencyStatus, Health
from ops.health.service import check_now


class Command(BaseCommand):
    help = (
        "Probe every dependency now, record the results like the periodic task, print a table "
        "(exit 1 if a configured dependency is down). --recorded prints the stored statuses instead."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--recorded",
            action="store_true",
            help="Do not probe: show what the periodic checks last recorded (UNKNOWN when stale).",
        )

    def handle(self, *args, recorded: bool, **options) -> None:
        if recorded:
            now = timezone.now()
            rows = [
                (
                    row.name,
                    row.effective_status(now),
                    row.latency_ms,
                    f"{row.detail} (checked {int((now - row.checked_at).total_seconds())}s ago)",
                )
                for row in DependencyStatus.objects.all()
            ]
        else:
            rows = [(r.name, r.status, r.latency_ms, r.detail) for r in check_now()]
        self.stdout.write(f"{'NAME':<12} {'STATUS':<15} {'LATENCY':>10}  DETAIL")
        for name, status, latency_ms, detail in rows:
            style = {Health.UP: self.style.SUCCESS, Health.DOWN: self.style.ERROR}.get(
                status, self.style.WARNING
            )
            self.stdout.write(f"{name:<12} {style(f'{status.upper():<15}')} {latency_ms:>8.1f}ms  {detail}")
        down = [name for name, status, _, _ in rows if status in (Health.DOWN, Health.UNKNOWN)]
        if down:
            raise CommandError(f"down or unknown: {', '.join(down)}")
