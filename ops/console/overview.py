"""What the console shows, read in a fixed number of bounded queries.

Every list is capped and every count is bounded, so the page costs the same with ten
trades or ten million (ops/tests/test_console.py asserts the query count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import Permission
from django.db.models import Q
from django.utils import timezone

from ops.alerts.heartbeat import ChainState, chain_state
from ops.alerts.models import Alert
from ops.alerts.silences import SILENCE
from ops.drill.models import DrillRun, Outcome
from ops.health.models import DependencyStatus, Health
from ops.records.models import Analysis, Trade
from ops.trading.models import (
    DRILL_SCOPE,
    GLOBAL_SCOPE,
    SEVERITY,
    ResumeRequest,
    State,
    TradingEvent,
    TradingState,
)
from ops.trading.service import APPROVE, HALT, RESUME, RUN_DRILL

EVENTS_SHOWN = 20
ALERTS_SHOWN = 50
REQUESTS_SHOWN = 20
# "Trades in the last 24 h" is a range read on the executed_at index (trade_executed_idx,
# analysis_analyzed_idx), stopped after COUNT_CAP rows: SELECT COUNT(*) FROM (SELECT 1 ...
# WHERE executed_at >= now - 24h LIMIT cap). Its cost is bounded by the cap, never by the
# table; past the cap the page says "10,000+". Why not hourly counter buckets: they
# would need new triggers on the trades table's insert path for a number an on-call
# person reads as "busy or quiet", and Prometheus/Grafana (the Trades (24h) panel) has
# the exact figure from investiq_trades_total.
COUNT_CAP = 10_000
ROLE_CODENAMES = (HALT, RESUME, APPROVE, SILENCE, RUN_DRILL, "view_tradingstate")


@dataclass(frozen=True)
class Permissions:
    """The console permissions (kill switch, silences) of the person looking (groups and direct grants; the
    superuser flag grants nothing, as in ops.trading.service)."""

    codenames: frozenset[str]

    @classmethod
    def of(cls, user) -> Permissions:
        if not (user.is_authenticated and user.is_active):
            return cls(frozenset())
        # One query for all four, instead of one per control.
        rows = Permission.objects.filter(
            Q(user=user) | Q(group__user=user), content_type__app_label="ops", codename__in=ROLE_CODENAMES
        ).values_list("codename", flat=True)
        return cls(frozenset(rows))

    @property
    def has_ops_role(self) -> bool:
        return bool(self.codenames)

    @property
    def can_halt(self) -> bool:
        return HALT in self.codenames

    @property
    def can_resume(self) -> bool:
        return RESUME in self.codenames

    @property
    def can_approve(self) -> bool:
        return APPROVE in self.codenames

    @property
    def can_silence(self) -> bool:
        return SILENCE in self.codenames

    @property
    def can_run_drill(self) -> bool:
        return RUN_DRILL in self.codenames


@dataclass(frozen=True)
class BoundedCount:
    value: int
    capped: bool

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


def bounded_count(queryset, cap: int = COUNT_CAP) -> BoundedCount:
    value = queryset.order_by()[: cap + 1].count()
    return BoundedCount(min(value, cap), value > cap)


# Tiles are read worst first: an outage must not hide below four healthy tiles.
TILE_ORDER = {Health.DOWN: 0, Health.UNKNOWN: 1, Health.NOT_CONFIGURED: 2, Health.UP: 3}


@dataclass(frozen=True)
class DependencyTile:
    name: str
    status: str
    label: str
    age_seconds: int
    latency_ms: float
    detail: str
    consecutive_failures: int
    # What the last check itself said (UNKNOWN is only our reading of its age).
    checked_status: str = Health.UP
    status_since: datetime | None = None

    @property
    def age(self) -> str:
        return duration(self.age_seconds)

    @property
    def latency(self) -> str:
        """Over a second in seconds (5004 ms reads as 5.0 s); nothing for a check not run."""
        if self.status == Health.NOT_CONFIGURED:
            return ""
        if self.latency_ms >= 1000:
            return f"{self.latency_ms / 1000:.1f} s"
        return f"{self.latency_ms:.0f} ms"

    @property
    def detail_label(self) -> str:
        """A healthy result is never called an error, even when it is too old to trust."""
        if self.checked_status == Health.DOWN:
            return "Last error"
        if self.status == Health.UNKNOWN:
            return f"Last check ({Health(self.checked_status).label.lower()})"
        return ""


def duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


@dataclass(frozen=True)
class Overview:
    now: datetime
    global_state: TradingState
    other_states: list[TradingState]
    dependencies: list[DependencyTile]
    alerts: list[Alert]
    # The alert list is only as current as the chain that fills it: its heartbeat.
    monitoring: ChainState
    events: list[TradingEvent]
    requests: list[ResumeRequest]
    trades_24h: BoundedCount
    analyses_24h: BoundedCount
    # The drill's own scope is not trading: it is never in other_states or worst_state.
    drill_running: bool = False
    last_drill: DrillRun | None = None

    @property
    def drill_summary(self) -> str:
        return drill_summary(self.last_drill, self.now)

    @property
    def worst_state(self) -> str:
        states = [self.global_state.state, *(s.state for s in self.other_states)]
        return max(states, key=lambda state: SEVERITY[state])


def overview(now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    # The global row and the non-ACTIVE scopes (few: a scope returns to ACTIVE on resume).
    states = list(TradingState.objects.filter(Q(scope=GLOBAL_SCOPE) | ~Q(state=State.ACTIVE)))
    global_state = next((s for s in states if s.scope == GLOBAL_SCOPE), None) or TradingState(
        scope=GLOBAL_SCOPE
    )
    since = now - timedelta(hours=24)
    return Overview(
        now=now,
        global_state=global_state,
        other_states=[s for s in states if s.scope not in (GLOBAL_SCOPE, DRILL_SCOPE)],
        dependencies=sorted(
            (_tile(row, now) for row in DependencyStatus.objects.all()),
            key=lambda tile: (TILE_ORDER.get(tile.status, 1), tile.name),
        ),
        alerts=list(Alert.objects.firing().newest_first()[:ALERTS_SHOWN]),
        monitoring=chain_state(now),
        events=list(TradingEvent.objects.recent(EVENTS_SHOWN)),
        requests=list(
            ResumeRequest.objects.pending()
            .select_related("requested_by")
            .order_by("expires_at")[:REQUESTS_SHOWN]
        ),
        trades_24h=bounded_count(Trade.objects.filter(executed_at__gte=since)),
        analyses_24h=bounded_count(Analysis.objects.filter(analyzed_at__gte=since)),
        drill_running=any(s.scope == DRILL_SCOPE for s in states),
        last_drill=DrillRun.objects.last_finished(),
    )


def drill_summary(run: DrillRun | None, now: datetime) -> str:
    """ "Last drill: passed 3 d ago, halt → alert in 2.4 s", or why there is no figure."""
    if run is None:
        return "No kill-switch drill has run yet."
    ago = duration(max(0, int((now - (run.ended_at or run.started_at)).total_seconds())))
    text = f"Last drill: {run.outcome} {ago} ago ({run.started_at:%Y-%m-%d %H:%M:%S} UTC)"
    if run.halt_to_alert_seconds is not None:
        return f"{text}, halt → alert in {run.halt_to_alert_seconds:.1f} s"
    if run.failure:
        # A failure names its stage; a stand-down says "stood down at <stage>" itself.
        return f"{text}, {run.failure}" if run.outcome == Outcome.ABORTED else f"{text}, at {run.failure}"
    alert = run.stage("alert_arrives")
    # The skip's first clause ("DRILL_ALERTS is off"); the run's record has the rest.
    return f"{text}; alert stages skipped: {alert['detail'].split(':')[0]}" if alert else text


def _tile(row: DependencyStatus, now: datetime) -> DependencyTile:
    status = row.effective_status(now)
    return DependencyTile(
        name=row.name,
        status=status,
        label=Health(status).label if status in Health.values else status,
        age_seconds=max(0, int((now - row.checked_at).total_seconds())),
        latency_ms=row.latency_ms,
        detail=row.detail,
        consecutive_failures=row.consecutive_failures,
        checked_status=row.status,
        status_since=row.status_since,
    )
