from django.core.management.base import BaseCommand

from ops.demo import seed


class Command(BaseCommand):
    help = "Write a few days of demo trades and analyses and a demo staff login (idempotent)."

    def handle(self, *args, **options) -> None:
        result = seed()
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
