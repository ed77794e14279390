from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ops.logins import lockouts
from ops.trading.service import shell_origin

SUPERVISOR = "ops_supervisor"


class Command(BaseCommand):
    help = (
        "Login lockouts (after too many failed logins for one username): status | release NAME. "
        "A release clears the name's counted failed logins so it may log in at once; it is made "
        "as --actor (a supervisor), with a reason, and recorded in the log and in the admin's "
        "history of that user, with the OS login and host it was typed on."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["status", "release"])
        parser.add_argument("username", nargs="?", help="release: the locked-out username")
        parser.add_argument("--actor", help="release: username of the supervisor releasing it")
        parser.add_argument("--reason", default="", help="release: why (required)")

    def handle(self, *args, action: str, username: str | None, **options) -> None:
        if action == "status":
            self._status()
            return
        if not username:
            raise CommandError("release needs the locked-out USERNAME.")
        actor = self._supervisor(options["actor"])
        reason = options["reason"].strip()
        if not reason:
            raise CommandError("--reason is required: why this lockout is released early.")
        result = lockouts.release(username, by=actor, origin=shell_origin(), reason=reason)
        if result.was is None:
            self.stdout.write(f"{username!r} had no counted failed logins; recorded, nothing else changed.")
        elif result.was.locked:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Released {username!r} (was locked until {lockouts.utc(result.was.until)}, "
                    f"{result.was.failures} failed logins cleared)."
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"{username!r} was not locked; {result.was.failures} failed logins cleared."
                )
            )

    def _supervisor(self, username: str | None):
        if not username:
            raise CommandError("--actor SUPERVISOR is required: every release is attributed to a person.")
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        # The role, not the superuser flag (which grants nothing in the kill switch either).
        if not (user.is_active and user.groups.filter(name=SUPERVISOR).exists()):
            raise CommandError(
                f"{username!r} is not an active supervisor ({SUPERVISOR}): only supervisors release."
            )
        return user

    def _status(self) -> None:
        found = lockouts.counted()
        if not found:
            self.stdout.write("No failed logins counted; nobody is locked out.")
        for lockout in found:
            where = ", ".join(lockout.addresses) or "unknown address"
            if lockout.locked:
                state = self.style.ERROR(f"LOCKED OUT until {lockouts.utc(lockout.until)}")
            else:
                state = f"{lockout.failures} of {lockouts.limit()} failed logins"
            self.stdout.write(
                f"{lockout.username:<30} {state}; {lockout.failures} failed, last "
                f"{lockouts.utc(lockout.last_failure)} from {where}"
            )
