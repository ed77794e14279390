from django.core.management.base import BaseCommand, CommandError

from ops.models import ApiClient


class Command(BaseCommand):
    help = "Create an API client and print its bearer token (shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="A unique name, e.g. trading-engine or alertmanager.")

    def handle(self, *args, name: str, **options) -> None:
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("The name must be 1–100 characters.")
        if ApiClient.objects.filter(name=name).exists():
            raise CommandError(
                f"An API client named {name!r} exists; revoke it in the admin or pick another name."
            )
        client, token = ApiClient.issue(name)
        self.stderr.write(self.style.SUCCESS(f"Created API client {client.name!r}. Store the token now:"))
        # Token alone on stdout, so scripts can capture it: TOKEN=$(manage.py create_api_token x)
        self.stdout.write(token)
