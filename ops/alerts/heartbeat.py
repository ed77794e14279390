"""The monitoring chain's heartbeat: the Watchdog alert, delivered by Alertmanager.

Prometheus fires `Watchdog` always (monitoring/alert_rules.yml) and Alertmanager
delivers it to the console's webhook every 30 s. Each delivery is a heartbeat, not an
alert: it updates one row. Its age tells apart a quiet day (recent heartbeat, no alerts)
from a dead chain (no heartbeat for MONITORING_HEARTBEAT_MAX_AGE_SECONDS): the console
then says MONITORING SILENT, GET /api/v1/alerts says "silent", check_monitoring FAILs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ops.alerts.models import Heartbeat

WATCHDOG_ALERTNAME = "Watchdog"

CONNECTED, SILENT, NOT_CONNECTED = "connected", "silent", "not_connected"


def record(now: datetime) -> None:
    """One Watchdog delivery: one UPDATE (an INSERT the very first time)."""
    updated = Heartbeat.objects.filter(name=Heartbeat.WATCHDOG).update(
        last_received_at=now, deliveries=F("deliveries") + 1
    )
    if updated:
        return
    try:
        with transaction.atomic():
            Heartbeat.objects.create(first_received_at=now, last_received_at=now, deliveries=1)
    except IntegrityError:
        # Two first deliveries raced: the other one created the row.
        Heartbeat.objects.filter(name=Heartbeat.WATCHDOG).update(
            last_received_at=now, deliveries=F("deliveries") + 1
        )


@dataclass(frozen=True)
class ChainState:
    state: str
    last_heartbeat_at: datetime | None
    age_seconds: int | None
    max_age_seconds: int

    @property
    def silent(self) -> bool:
        return self.state == SILENT


def chain_state(now: datetime | None = None) -> ChainState:
    now = now or timezone.now()
    max_age = settings.MONITORING_HEARTBEAT_MAX_AGE_SECONDS
    row = Heartbeat.objects.filter(name=Heartbeat.WATCHDOG).first()
    if row is None:
        return ChainState(NOT_CONNECTED, None, None, max_age)
    # A clock a little ahead on the sender's side is not a negative age.
    age = max(0, int((now - row.last_received_at).total_seconds()))
    return ChainState(SILENT if age > max_age else CONNECTED, row.last_received_at, age, max_age)
