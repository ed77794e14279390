from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ops.trading import service
from ops.trading.errors import TradingStateError
from ops.trading.models import ResumeRequest, State, TradingState
from ops.trading.scopes import InvalidScope


class Command(BaseCommand):
    help = (
        "Kill switch from a shell: status | halt | resume | approve. Every change is made "
        "as --actor (a user, permission-checked like in the console) with source 'command'."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["status", "halt", "resume", "approve"])
        parser.add_argument("--scope", default="global", help="global, strategy:<name> or symbol:<TICKER>")
        parser.add_argument(
            "--state", help="halt: HALTED (default) or REDUCING; resume: ACTIVE (default) or REDUCING"
        )
        parser.add_argument("--reason", default="", help="Why (required for halt and resume).")
        parser.add_argument("--actor", help="Username of the person acting (required for changes).")
        parser.add_argument("--request", type=int, help="approve: the resume request id.")
        parser.add_argument(
            "--cancel-orders", action="store_true", help="halt: also cancel open orders at Alpaca."
        )

    def handle(self, *args, action: str, **options) -> None:
        if action == "status":
            self._status()
            return
        actor = self._actor(options["actor"])
        try:
            if action == "halt":
                result = service.halt(
                    options["scope"],
                    reason=options["reason"],
                    actor=actor,
                    source="command",
                    to_state=(options["state"] or State.HALTED).upper(),
                    cancel_orders=options["cancel_orders"],
                )
                self._report(result)
            elif action == "resume":
                to_state = (options["state"] or State.ACTIVE).upper()
                if settings.TRADING_TWO_PERSON_RESUME:
                    request = service.request_resume(
                        options["scope"], reason=options["reason"], actor=actor, to_state=to_state
                    )
                    self.stdout.write(
                        self.style.WARNING(
                            f"Two-person resume: request #{request.pk} created, expires "
                            f"{request.expires_at:%H:%M:%S} UTC. Another supervisor runs: "
                            f"manage.py trading approve --request {request.pk} --actor NAME"
                        )
                    )
                else:
                    self._report(
                        service.resume(
                            options["scope"],
                            reason=options["reason"],
                            actor=actor,
                            to_state=to_state,
                            source="command",
                        )
                    )
            else:
                if options["request"] is None:
                    raise CommandError("approve needs --request ID.")
                self._report(service.approve_resume(options["request"], approver=actor, source="command"))
        except (TradingStateError, InvalidScope) as exc:
            raise CommandError(str(exc)) from None

    def _actor(self, username: str | None) -> service.Actor:
        if not username:
            raise CommandError("--actor USERNAME is required: every change is attributed to a person.")
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        return service.Actor.of(user)

    def _report(self, result: service.TransitionResult) -> None:
        if result.cancellation is not None:
            cancel = result.cancellation
            self.stdout.write(
                f"{result.state.scope} is already {result.state.state}; "
                f"cancel all open orders: {cancel.broker_outcome} {cancel.broker_detail}"
            )
            return
        if not result.changed:
            self.stdout.write(f"{result.state.scope} is already {result.state.state}; nothing changed.")
            return
        event = result.event
        self.stdout.write(
            self.style.SUCCESS(f"{event.scope}: {event.from_state} -> {event.to_state} (event #{event.pk})")
        )
        if event.broker_detail is not None:
            self.stdout.write(f"broker: {event.broker_outcome} {event.broker_detail}")

    def _status(self) -> None:
        rows = list(TradingState.objects.all())
        if not rows:
            self.stdout.write("global ACTIVE")
        for row in rows:
            since = f"{row.since:%Y-%m-%d %H:%M:%S}"
            line = f"{row.scope:<30} {row.state:<9} since {since} by {row.changed_by or '-'}"
            if row.state != State.ACTIVE:
                line += f" ({row.source}): {row.reason}"
            self.stdout.write(line)
        for request in ResumeRequest.objects.pending():
            self.stdout.write(f"pending resume request #{request.pk}: {request}")
