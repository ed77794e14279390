from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ops.db import killswitch_connection
from ops.trading import broker, service
from ops.trading.errors import TradingStateError
from ops.trading.models import BrokerOutbox, BrokerOutcome, ResumeRequest, State, TradingEvent, TradingState
from ops.trading.scopes import InvalidScope, parse_scope

APPROVE_FROM_THE_SHELL = (
    "Approvals are not taken from a shell: --actor is a name anyone with this shell can type, "
    "so one person could both request and approve. A different supervisor approves the request "
    "while logged in: admin → Resume requests → 'Approve selected resume requests'."
)


class Command(BaseCommand):
    # A halt must not depend on unrelated configuration: an Error from any system check
    # (a malformed ALERT_ACTIONS, say) would otherwise refuse to run the kill switch.
    requires_system_checks = []
    help = (
        "Kill switch from a shell: status | halt | resume | approve. Every change is made as "
        "--actor (a user, permission-checked like in the console) with source 'command', and "
        "records the OS login and host it was typed on. With the two-person rule, `resume` "
        "only creates a request: approving it needs a login session (admin → Resume requests); "
        "`approve` from a shell is refused."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["status", "halt", "resume", "approve"])
        parser.add_argument(
            "--scope",
            help="global (default), strategy:<name> or symbol:<TICKER>; status: that scope's history",
        )
        parser.add_argument(
            "--state", help="halt: HALTED (default) or REDUCING; resume: ACTIVE (default) or REDUCING"
        )
        parser.add_argument("--reason", default="", help="Why (required for halt and resume).")
        parser.add_argument("--actor", help="Username of the person acting (required for changes).")
        parser.add_argument(
            "--request", type=int, help=f"approve: refused from a shell. {APPROVE_FROM_THE_SHELL}"
        )
        parser.add_argument(
            "--cancel-orders", action="store_true", help="halt: also cancel open orders at Alpaca."
        )

    def handle(self, *args, action: str, **options) -> None:
        # A halt from a shell must get in even when the server admits nobody else.
        with killswitch_connection():
            self._handle(action, options)

    def _handle(self, action: str, options: dict) -> None:
        if action == "status":
            self._status(options["scope"])
            return
        if action == "approve":
            # Refused before anything else: no user lookup, no permission check to probe.
            raise CommandError(APPROVE_FROM_THE_SHELL)
        actor = self._actor(options["actor"])
        scope = options["scope"] or "global"
        try:
            if action == "halt":
                result = service.halt(
                    scope,
                    reason=options["reason"],
                    actor=actor,
                    source="command",
                    to_state=(options["state"] or State.HALTED).upper(),
                    cancel_orders=options["cancel_orders"],
                )
                self._report(result)
            elif settings.TRADING_TWO_PERSON_RESUME:
                request = service.request_resume(
                    scope,
                    reason=options["reason"],
                    actor=actor,
                    to_state=(options["state"] or State.ACTIVE).upper(),
                )
                self.stdout.write(
                    self.style.WARNING(
                        f"Two-person resume: request #{request.pk} created, expires "
                        f"{request.expires_at:%H:%M:%S} UTC. A different supervisor approves it, "
                        f"logged in: admin → Resume requests."
                    )
                )
            else:
                self._report(
                    service.resume(
                        scope,
                        reason=options["reason"],
                        actor=actor,
                        to_state=(options["state"] or State.ACTIVE).upper(),
                        source="command",
                    )
                )
        except (TradingStateError, InvalidScope) as exc:
            raise CommandError(str(exc)) from None

    def _actor(self, username: str | None) -> service.Actor:
        if not username:
            raise CommandError("--actor USERNAME is required: every change is attributed to a person.")
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        return service.Actor.from_shell(user)

    def _report(self, result: service.TransitionResult) -> None:
        if result.cancellation is not None:
            self.stdout.write(f"{result.state.scope} is already {result.state.state}; nothing changed.")
            self._report_broker(result.cancellation)
            return
        if not result.changed:
            self.stdout.write(f"{result.state.scope} is already {result.state.state}; nothing changed.")
            return
        event = result.event
        self.stdout.write(
            self.style.SUCCESS(f"{event.scope}: {event.from_state} -> {event.to_state} (event #{event.pk})")
        )
        if event.broker_outcome != BrokerOutcome.NOT_REQUESTED:
            self._report_broker(event)

    def _report_broker(self, row: BrokerOutbox) -> None:
        row = broker.wait_for_outcome(row)
        style = {BrokerOutcome.SUCCEEDED: self.style.SUCCESS, BrokerOutcome.FAILED: self.style.ERROR}
        paint = style.get(row.broker_outcome, self.style.WARNING)
        self.stdout.write(paint(f"cancel all open orders at the broker: {row.broker_summary}"))

    def _status(self, scope: str | None) -> None:
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
            self.stdout.write(
                f"pending resume request #{request.pk}: {request} by {request.requested_by} "
                f"from {request.origin or '-'}, expires {request.expires_at:%H:%M:%S} UTC"
            )
        owed = broker.pending_count()
        if owed:
            self.stdout.write(
                self.style.WARNING(f"{owed} cancel-all-orders request(s) pending at the broker")
            )
        events = TradingEvent.objects.all()
        if scope:
            try:
                events = events.for_scope(parse_scope(scope))
            except InvalidScope as exc:
                raise CommandError(str(exc)) from None
        recent = list(events.recent(10))
        if recent:
            self.stdout.write("recent transitions:")
        for event in recent:
            approver = f", approved by {event.approver}" if event.approver else ""
            where = f"{event.source}, from {event.origin or '-'}{approver}"
            self.stdout.write(f"  #{event.pk} {event} ({where}): {event.reason}")
