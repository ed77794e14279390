from django.core.management.base import BaseCommand, CommandError

from ops.api.models import DEFAULT_SCOPES, ApiClient, Scope, normalize_scopes


class Command(BaseCommand):
    help = "Create an API client and print its bearer token (shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="A unique name, e.g. trading-engine or alertmanager.")
        parser.add_argument(
            "--scopes",
            default=DEFAULT_SCOPES,
            help=f"Comma-separated, of {', '.join(Scope.values)} (default: {DEFAULT_SCOPES}). "
            "Alertmanager needs only 'alerts'.",
        )

    def handle(self, *args, name: str, scopes: str, **options) -> None:
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("The name must be 1–100 characters.")
        try:
            scopes = normalize_scopes(scopes)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if ApiClient.objects.filter(name=name).exists():
            raise CommandError(
                f"An API client named {name!r} exists; revoke it in the admin or pick another name."
            )
        client, token = ApiClient.issue(name, scopes)
        self.stderr.write(
            self.style.SUCCESS(f"Created API client {client.name!r} ({client.scopes}). Store the token now:")
        )
        # Token alone on stdout, so scripts can capture it: TOKEN=$(manage.py create_api_token x)
        self.stdout.write(token)
