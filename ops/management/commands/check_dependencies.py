from django.core.management.base import BaseCommand, CommandError

from ops.health.models import Health
from ops.health.service import check_now


class Command(BaseCommand):
    help = "Probe every dependency now, record the results like the periodic task, print a table."

    def handle(self, *args, **options) -> None:
        results = check_now()
        self.stdout.write(f"{'NAME':<12} {'STATUS':<15} {'LATENCY':>10}  DETAIL")
        for result in results:
            style = {Health.UP: self.style.SUCCESS, Health.DOWN: self.style.ERROR}.get(result.status, str)
            status = style(f"{result.status.upper():<15}")
            self.stdout.write(f"{result.name:<12} {status} {result.latency_ms:>8.1f}ms  {result.detail}")
        down = [result.name for result in results if result.status == Health.DOWN]
        if down:
            raise CommandError(f"down: {', '.join(down)}")
