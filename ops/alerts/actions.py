"""Alert-driven kill-switch actions (ALERT_ACTIONS, off unless configured).

A firing alert whose name is mapped trips the kill switch through its one service, as
source `alert:<alertname>`, once per occurrence. Nothing here ever resumes: a resolved
alert changes nothing, and a person's resume during the same occurrence stands.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from ops.alerts.models import CONSOLE_ONLY_LABEL, Alert, AlertStatus
from ops.trading import service as kill_switch
from ops.trading.errors import TradingStateError
from ops.trading.models import State
from ops.trading.scopes import InvalidScope, parse_scope

logger = logging.getLogger(__name__)

ALERTMANAGER_ACTOR = kill_switch.Actor.system("alertmanager", kill_switch.HALT)


def parse_action(text: object) -> tuple[str, str]:
    """'global:HALTED', 'strategy:momentum:REDUCING', 'symbol:TSLA:HALTED' -> (scope, state)."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r}: an action is a string such as 'global:HALTED'.")
    scope, _, state = text.rpartition(":")
    if state not in (State.HALTED, State.REDUCING):
        raise ValueError(f"{text!r}: the action must end in :HALTED or :REDUCING.")
    try:
        return parse_scope(scope), state
    except InvalidScope as exc:
        raise ValueError(f"{text!r}: {exc}") from None


# Alerts ALERT_ACTIONS may not name (ops.E004): the drill's and the dead man's switch.
NEVER_ACTED_ON = ("KillSwitchDrillHalted", "Watchdog")


def act_on(alert: Alert) -> None:
    """Called with the alert's row locked, inside the transaction that stores it."""
    actions = settings.ALERT_ACTIONS if isinstance(settings.ALERT_ACTIONS, dict) else {}
    action = actions.get(alert.alertname)
    if action is None or alert.status != AlertStatus.FIRING or alert.action_taken_at is not None:
        return
    if alert.labels.get(CONSOLE_ONLY_LABEL) == "true":
        # The drill's own alert: acting on it would turn a drill into a real halt.
        logger.error("ALERT_ACTIONS[%r]: a console-only alert is never acted on", alert.alertname)
        return
    try:
        scope, state = parse_action(action)
    except ValueError:
        # ops.E004 reports this at start-up; never let a bad mapping lose the alert itself.
        logger.error(
            "ALERT_ACTIONS[%r] = %r is not an action; alert stored, nothing done", alert.alertname, action
        )
        return
    since = f"{alert.starts_at:%Y-%m-%d %H:%M:%S}Z"
    reason = f"{alert.summary or alert.alertname} (alert {alert.fingerprint} firing since {since})"
    try:
        result = kill_switch.halt(
            scope, to_state=state, actor=ALERTMANAGER_ACTOR, source=f"alert:{alert.alertname}", reason=reason
        )
        alert.action_event = result.event
    except TradingStateError as exc:
        # e.g. REDUCING asked while already HALTED: the stricter state holds already.
        logger.info("alert %s: %s not applied: %s", alert.alertname, action, exc)
    alert.action_taken_at = timezone.now()
    alert.save(update_fields=["action_taken_at", "action_event"])
