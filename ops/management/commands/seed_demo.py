from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ops.demo import DEMO_USERS, seed
from ops.trading.gate import TradeDenied, TradingStateUnavailable


class Command(BaseCommand):
    help = (
        "Write a few days of demo trades and analyses and demo logins for every role "
        "(idempotent). Refused outside DEBUG unless --force: it creates a superuser."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even though DEBUG is off (never on a real deployment: it creates a superuser).",
        )

    def handle(self, *args, force: bool, **options) -> None:
        if not (settings.DEBUG or force):
            raise CommandError(
                "seed_demo creates a superuser and demo trades; it runs only with DEBUG=true "
                "(as `make run` sets). Add --force if you really mean this database."
            )
        try:
            result = seed()
        except (TradeDenied, TradingStateUnavailable) as exc:
            # Demo trades pass the pre-trade gate like any trade; nothing was written.
            raise CommandError(f"No demo data written: the pre-trade gate refused it: {exc}") from None
        if result.trades or result.analyses:
            self.stdout.write(f"Seeded {result.trades} trades and {result.analyses} analyses.")
        else:
            self.stdout.write("Demo data already present; nothing added.")
        if result.logins:
            self.stdout.write(self.style.SUCCESS("Demo logins (shown once; keep them):"))
            for username, (role, password) in result.logins.items():
                self.stdout.write(self.style.SUCCESS(f"  {username:<6} {role:<15} {password}"))
        kept = [name for name in DEMO_USERS if name not in result.logins]
        if kept:
            self.stdout.write(
                f"Existing demo logins kept their passwords ({', '.join(kept)}); "
                "`manage.py changepassword NAME` sets a new one."
            )
