"""Demo data for a laptop run: a few realistic days of trades and analyses."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from ops.alerts.models import Alert, AlertStatus
from ops.health.models import DependencyStatus, Health
from ops.records.intake import TradeOrder, lock_position, record_analysis
from ops.records.models import Analysis, Signal, Trade
from ops.trading.gate import submit_trade

DEMO_USERNAME = "demo"
# The people of the demo, so that every role and the two-person resume can be tried:
# username -> role. `demo` is also a superuser (the admin's user screens); the kill
# switch ignores that flag and goes by the role.
DEMO_USERS = {
    DEMO_USERNAME: "ops_supervisor",
    "alice": "ops_operator",
    "bob": "ops_supervisor",
    "carol": "ops_supervisor",
    "vera": "ops_viewer",
}
# Rough mid prices so the numbers on screen look like a real book.
SYMBOLS = {
    "AAPL": 228,
    "MSFT": 415,
    "NVDA": 135,
    "AMZN": 201,
    "TSLA": 251,
    "SPY": 590,
    "BRK.B": 462,
    "META": 575,
}
STRATEGIES = ("momentum", "mean_reversion", "pairs", "default")
DAYS = 3
TRADES_PER_DAY = 60
ANALYSES_PER_DAY = 40


@dataclass
class SeedResult:
    trades: int
    analyses: int
    # username -> (role, password) for the logins created by this run; existing ones keep
    # their passwords and are not listed.
    logins: dict[str, tuple[str, str]]


def seed(now: datetime | None = None) -> SeedResult:
    """Idempotent: a second run adds nothing and leaves the demo password alone.

    Demo trades go through the pre-trade gate like any other: on a fresh database
    trading is ACTIVE; on a halted one the gate refuses (TradeDenied) and, all demo
    rows being one transaction, nothing is written.
    """
    now = now or timezone.now()
    with transaction.atomic():
        logins = _ensure_demo_users()
        _ensure_demo_health_and_alerts(now)
        if Trade.objects.demo().exists():
            # All demo rows are written in one transaction, so some means all.
            return SeedResult(0, 0, logins)
        # Many trades in one transaction: take every position lock first, in one order,
        # so this never holds a counter row while waiting for a position (deadlock).
        for strategy, symbol in sorted((st, sy) for st in STRATEGIES for sy in SYMBOLS):
            lock_position(strategy, symbol)
        rng = random.Random(20261127)  # fixed seed: the same demo book every time
        start = (now - timedelta(days=DAYS)).replace(hour=14, minute=30, second=0, microsecond=0)
        trades = analyses = 0
        for day in range(DAYS):
            session_open = start + timedelta(days=day)
            for n in range(TRADES_PER_DAY):
                symbol = rng.choice(list(SYMBOLS))
                submit_trade(
                    TradeOrder(
                        client_order_id=f"demo-{day}-{n:04d}",
                        symbol=symbol,
                        side=rng.choice(("buy", "sell")),
                        quantity=Decimal(rng.choice((1, 5, 10, 25, 50, 100))),
                        price=_price(rng, symbol),
                        strategy=rng.choice(STRATEGIES),
                        executed_at=session_open + timedelta(seconds=rng.randint(0, 6 * 3600 + 1800)),
                    )
                )
                trades += 1
            for _ in range(ANALYSES_PER_DAY):
                symbol = rng.choice(list(SYMBOLS))
                record_analysis(
                    {
                        "symbol": symbol,
                        "signal": rng.choice(Signal.values),
                        "confidence": Decimal(rng.randint(3500, 9900)) / 10000,
                        "model_version": "demo-lstm-1.4",
                        "price": _price(rng, symbol),
                        "analyzed_at": session_open + timedelta(seconds=rng.randint(0, 6 * 3600 + 1800)),
                    }
                )
                analyses += 1
    return SeedResult(trades, analyses, logins)


def _price(rng: random.Random, symbol: str) -> Decimal:
    return (Decimal(SYMBOLS[symbol]) * Decimal(1 + rng.uniform(-0.02, 0.02))).quantize(Decimal("0.01"))


def _ensure_demo_users() -> dict[str, tuple[str, str]]:
    User = get_user_model()
    created = {}
    for username, role in DEMO_USERS.items():
        if User.objects.filter(username=username).exists():
            continue
        # Never a fixed password: even a demo login must not be guessable from the source.
        password = secrets.token_urlsafe(12)
        if username == DEMO_USERNAME:
            user = User.objects.create_superuser(username, email="", password=password)
        else:
            user = User.objects.create_user(username, password=password, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        created[username] = (role, password)
    return created


def _ensure_demo_health_and_alerts(now: datetime) -> None:
    """Every kind of console tile, until the running probes and Alertmanager replace them.

    Dependency rows only on a database that has none: real probe results are never
    overwritten. Alerts are keyed by fingerprint + start, so a rerun adds nothing.
    """
    # One story the tiles and the alerts both tell (checked by test_demo): polygon went down
    # two checks ago (below AUTO_TRIP_AFTER_FAILURES, and short of DependencyDown's
    # `for: 1m`, so nothing tripped and that alert is not firing yet); alpaca's checks
    # stopped two hours ago, so its tile is UNKNOWN and DependencyHealthStale fires since
    # the age passed 45 s plus the rule's minute.
    interval = timedelta(seconds=settings.PROBE_INTERVAL_SECONDS)
    stale = now - timedelta(hours=2)  # older than three probe intervals: shown UNKNOWN
    if not DependencyStatus.objects.exists():
        for name, status, latency, detail, checked_at, failures, status_since in (
            ("database", Health.UP, 1.8, "", now, 0, now - timedelta(days=DAYS)),
            ("redis", Health.UP, 0.9, "", now, 0, now - timedelta(days=DAYS)),
            ("polygon", Health.DOWN, 5003.0, "demo: read timeout after 5.0 s", now, 2, now - interval),
            ("alpaca", Health.UP, 212.0, "demo: account reachable", stale, 0, stale - timedelta(days=DAYS)),
            ("ml_service", Health.NOT_CONFIGURED, 0.0, "demo: ML_SERVICE_URL is not set", now, 0, now),
        ):
            DependencyStatus.objects.create(
                name=name,
                status=status,
                latency_ms=latency,
                detail=detail,
                checked_at=checked_at,
                consecutive_failures=failures,
                status_since=status_since,
            )
    stale_fired = (stale + 3 * interval + timedelta(minutes=1)).replace(microsecond=0)
    resolved_at = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    for fingerprint, status, alertname, severity, summary, starts_at, labels in (
        (
            "demo-alpaca-health-stale",
            AlertStatus.FIRING,
            "DependencyHealthStale",
            "warning",
            "demo: health of alpaca is stale",
            stale_fired,
            {"name": "alpaca"},
        ),
        (
            "demo-high-latency",
            AlertStatus.RESOLVED,
            "HighLatency",
            "warning",
            "demo: p95 latency above 1 s (resolved)",
            resolved_at,
            {},
        ),
    ):
        Alert.objects.get_or_create(
            fingerprint=fingerprint,
            defaults={
                "starts_at": starts_at,
                "status": status,
                "ends_at": starts_at + timedelta(minutes=20) if status == AlertStatus.RESOLVED else None,
                "alertname": alertname,
                "severity": severity,
                "summary": summary,
                "runbook_url": f"monitoring/README.md#{alertname.lower()}",
                "labels": {"alertname": alertname, "severity": severity, "demo": "true", **labels},
            },
        )


def demo_counts() -> tuple[int, int]:
    return Trade.objects.demo().count(), Analysis.objects.demo().count()
