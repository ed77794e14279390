from __future__ import annotations

import logging
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ops.trading.roles import ROLES
from ops.trading.service import shell_origin

logger = logging.getLogger(__name__)

ROLE_NAMES = {role.removeprefix("ops_"): role for role in ROLES}  # viewer -> ops_viewer


class Command(BaseCommand):
    help = (
        "Give a person one ops role (viewer, operator or supervisor), replacing any other ops role, "
        "and console access. The superuser flag grants nothing in the kill switch: this is how a "
        "deployment gets its operators and supervisors."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(ROLE_NAMES))
        parser.add_argument(
            "--create",
            action="store_true",
            help="Create the user if missing (a random password is printed once).",
        )

    def handle(self, *args, username: str, role: str, create: bool, **options) -> None:
        User = get_user_model()
        group_name = ROLE_NAMES[role]
        password = None
        with transaction.atomic():
            user = User.objects.select_for_update().filter(username=username).first()
            if user is None:
                if not create:
                    raise CommandError(f"No user {username!r}; add --create to create one.")
                password = secrets.token_urlsafe(12)
                try:
                    user = User.objects.create_user(username, password=password)
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
            previous = sorted(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
            user.groups.remove(*Group.objects.filter(name__in=ROLES))
            user.groups.add(Group.objects.get(name=group_name))
            if not user.is_staff:
                user.is_staff = True  # the console and admin are for staff only
                user.save(update_fields=["is_staff"])
        # Role changes decide who may resume trading: leave a trace of who made them, and where.
        logger.warning(
            "ops role of %s set to %s (was %s) from the shell (%s)",
            username,
            group_name,
            ", ".join(previous) or "none",
            shell_origin(),
        )
        self.stdout.write(
            self.style.SUCCESS(f"{username}: {group_name} (was {', '.join(previous) or 'none'}).")
        )
        if password:
            self.stdout.write(f"Created {username} with password (shown once): {password}")
