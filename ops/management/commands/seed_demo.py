from django.core.management.base import BaseCommand, CommandError

from ops.demo import seed
from ops.trading.gate import TradeDenied, TradingStateUnavailable


class Command(BaseCommand):
    help = "Write a few days of demo trades and analyses and a demo staff login (idempotent)."

    def handle(self, *args, **options) -> None:
        try:
            result = seed()
        except (TradeDenied, TradingStateUnavailable) as exc:
            # Demo trades pass the pre-trade gate like any trade; nothing was written.
            raise CommandError(f"No demo data written: the pre-trade gate refused it: {exc}") from None
        if result.trades or result.analyses:
            self.stdout.write(f"Seeded {result.trades} trades and {result.analyses} analyses.")
        else:
            self.stdout.write("Demo data already present; nothing added.")
        if result.password:
            self.stdout.write(self.style.SUCCESS(f"Demo login: {result.username} / {result.password}"))
        else:
            self.stdout.write(
                f"Demo login: {result.username} (password unchanged; "
                f"`manage.py changepassword {result.username}` sets a new one)"
            )
