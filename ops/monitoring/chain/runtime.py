"""Checks against the running chain: Prometheus, Alertmanager, Grafana, the app, the beat."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ops.alerts.heartbeat import NOT_CONNECTED, chain_state
from ops.health.models import DependencyStatus
from ops.http import OutboundError, Timeout, request_json, request_text
from ops.metrics import COLLECTED, PER_PROCESS
from ops.monitoring.chain import FAIL, PASS, SKIP, WARN, Result
from ops.monitoring.chain.files import BrokenFile, load, rule_files

TIMEOUT = Timeout(2.0, 5.0)


@dataclass(frozen=True)
class Urls:
    prometheus: str
    alertmanager: str
    grafana: str
    app: str


def _get_json(url: str) -> dict:
    body = request_json("GET", url, timeout=TIMEOUT).body
    if not isinstance(body, dict) or body.get("status", "success") != "success":
        raise OutboundError("malformed", f"unexpected answer: {body!r:.200}")
    return body


def prometheus(urls: Urls) -> Iterator[Result]:
    base = urls.prometheus.rstrip("/")
    try:
        request_text("GET", f"{base}/-/ready", timeout=TIMEOUT)
    except OutboundError as exc:
        yield Result("Prometheus ready", FAIL, f"{base}: {exc.detail}")
        return  # nothing else can be asked of it
    yield Result("Prometheus ready", PASS, base)
    yield from _targets(base)
    yield from _rules(base)
    yield from _alertmanager_connected(base)
    yield from _webhook_deliveries(base)


def _targets(base: str) -> Iterator[Result]:
    try:
        expected = [job["job_name"] for job in load("prometheus.yml").get("scrape_configs") or []]
        active = _get_json(f"{base}/api/v1/targets?state=active")["data"]["activeTargets"]
    except (OutboundError, BrokenFile, KeyError, TypeError) as exc:
        yield Result("scrape targets up", FAIL, str(exc))
        return
    for job in expected:
        targets = [target for target in active if target.get("labels", {}).get("job") == job]
        down = [
            f"{t.get('scrapeUrl')}: {t.get('lastError') or t.get('health')}"
            for t in targets
            if t.get("health") != "up"
        ]
        if not targets:
            yield Result(f"target {job}", FAIL, "no target of this job is scraped")
        elif down:
            yield Result(f"target {job}", FAIL, "; ".join(down))
        else:
            yield Result(f"target {job}", PASS, ", ".join(t.get("scrapeUrl", "") for t in targets))


def _rules(base: str) -> Iterator[Result]:
    check = "rule groups loaded, evaluating without errors"
    try:
        expected = {group["name"] for name in rule_files() for group in load(name).get("groups") or []}
        groups = _get_json(f"{base}/api/v1/rules")["data"]["groups"]
    except (OutboundError, BrokenFile, KeyError, TypeError) as exc:
        yield Result(check, FAIL, str(exc))
        return
    loaded = {group["name"] for group in groups}
    missing = sorted(expected - loaded)
    failing = [
        f"{rule.get('name')}: {rule.get('lastError')}"
        for group in groups
        for rule in group.get("rules") or []
        if rule.get("health") == "err" or rule.get("lastError")
    ]
    if missing or failing:
        detail = ([f"not loaded: {', '.join(missing)}"] if missing else []) + failing
        yield Result(check, FAIL, "; ".join(detail))
    else:
        yield Result(check, PASS, f"{len(loaded)} groups")


def _alertmanager_connected(base: str) -> Iterator[Result]:
    check = "Prometheus sends alerts to Alertmanager"
    try:
        active = _get_json(f"{base}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    except (OutboundError, KeyError, TypeError) as exc:
        yield Result(check, FAIL, str(exc))
        return
    if not active:
        yield Result(check, FAIL, "Prometheus knows no active Alertmanager")
    else:
        yield Result(check, PASS, ", ".join(item.get("url", "") for item in active))


# Alertmanager counts its failed deliveries; Prometheus scrapes it (job alertmanager).
WEBHOOK_FAILURES = 'sum(increase(alertmanager_notifications_failed_total{integration="webhook"}[10m]))'


WEBHOOK_SAMPLES = 'count_over_time(alertmanager_notifications_failed_total{integration="webhook"}[10m])'
ALERTMANAGER_UP = 'up{job="alertmanager"}'


def _query(base: str, expr: str) -> list:
    return _get_json(f"{base}/api/v1/query?query={quote(expr)}")["data"]["result"]


def _webhook_deliveries(base: str) -> Iterator[Result]:
    """Ready is not enough: a wrong webhook token fails every notification (401) while
    both ends say they are fine.

    increase() needs two samples, so on a freshly started Prometheus the answer is empty
    although the job is scraped: that is a WARN (run it again), never a FAIL. FAIL only
    when Prometheus does not scrape Alertmanager at all, or when deliveries failed.
    """
    check = "Alertmanager delivers to the console webhook"
    try:
        result = _query(base, WEBHOOK_FAILURES)
        if not result:
            yield _why_no_webhook_failures(base, check)
            return
    except (OutboundError, KeyError, TypeError) as exc:
        yield Result(check, FAIL, str(exc))
        return
    failed = float(result[0]["value"][1])
    if failed > 0:
        yield Result(
            check,
            FAIL,
            f"{failed:g} failed webhook deliveries in the last 10 min: see Alertmanager's log "
            "(a 401/403 means ALERTMANAGER_WEBHOOK_TOKEN is not an 'alerts' token of the app)",
        )
    else:
        yield Result(check, PASS, "no failed deliveries in the last 10 min")


def _why_no_webhook_failures(base: str, check: str) -> Result:
    samples = _query(base, WEBHOOK_SAMPLES)
    if samples:
        count = int(float(samples[0]["value"][1]))
        return Result(
            check,
            WARN,
            f"only {count} sample(s) of alertmanager_notifications_failed_total so far (two are "
            "needed): Prometheus started recently; run again after two scrape intervals",
        )
    up = _query(base, ALERTMANAGER_UP)
    if not up:
        active = _get_json(f"{base}/api/v1/targets?state=active")["data"]["activeTargets"]
        if any(target.get("labels", {}).get("job") == "alertmanager" for target in active):
            return Result(check, WARN, "the alertmanager job is not scraped yet: run again in a few seconds")
        return Result(check, FAIL, "Prometheus does not scrape Alertmanager (no alertmanager job)")
    if all(float(item["value"][1]) == 0 for item in up):
        return Result(check, FAIL, "the alertmanager target is down, so its delivery failures are unknown")
    return Result(
        check,
        FAIL,
        "Alertmanager is scraped but exports no webhook counter: "
        "is the console's webhook receiver configured?",
    )


def heartbeat(urls: Urls) -> Iterator[Result]:
    """The Watchdog's deliveries, as the app recorded them: the chain's end-to-end proof."""
    check = "Watchdog heartbeat reaches the console"
    try:
        state = chain_state()
    except DatabaseError as exc:
        yield Result(check, FAIL, f"cannot read the heartbeat: {exc}".splitlines()[0])
        return
    if state.state == NOT_CONNECTED:
        yield Result(
            check,
            WARN,
            "no Watchdog heartbeat has ever been received: Alertmanager has not delivered yet "
            "(a fresh stack needs ~30 s) or does not reach the app's webhook",
        )
    elif state.silent:
        yield Result(
            check,
            FAIL,
            f"MONITORING SILENT: the last Watchdog heartbeat is {state.age_seconds} s old "
            f"(MONITORING_HEARTBEAT_MAX_AGE_SECONDS={state.max_age_seconds}): Prometheus or "
            "Alertmanager has stopped, or cannot reach the console's webhook",
        )
    else:
        yield Result(check, PASS, f"last Watchdog heartbeat {state.age_seconds} s ago")


def alertmanager(urls: Urls) -> Iterator[Result]:
    base = urls.alertmanager.rstrip("/")
    try:
        request_text("GET", f"{base}/-/ready", timeout=TIMEOUT)
    except OutboundError as exc:
        yield Result("Alertmanager ready", FAIL, f"{base}: {exc.detail}")
        return
    yield Result("Alertmanager ready", PASS, base)


def grafana(urls: Urls) -> Iterator[Result]:
    if not urls.grafana:
        yield Result("Grafana healthy", SKIP, "no Grafana URL (GRAFANA_URL or --grafana-url)")
        return
    if urls.grafana.startswith("/"):
        # A path on the console's origin (behind the TLS proxy): no host to ask from here.
        yield Result(
            "Grafana healthy",
            SKIP,
            f"GRAFANA_URL {urls.grafana} is a path behind the proxy; "
            "pass --grafana-url with Grafana's own URL",
        )
        return
    base = urls.grafana.rstrip("/")
    try:
        body = request_json("GET", f"{base}/api/health", timeout=TIMEOUT).body
    except OutboundError as exc:
        yield Result("Grafana healthy", FAIL, f"{base}: {exc.detail}")
        return
    database = body.get("database") if isinstance(body, dict) else None
    if database != "ok":
        yield Result("Grafana healthy", FAIL, f"{base}: database {database!r}")
    else:
        yield Result("Grafana healthy", PASS, f"{base} {body.get('version', '')}".strip())


def contract_names() -> set[str]:
    """The metric family names of the contract, as the exposition parser reports them."""
    names = {family.name for metric in PER_PROCESS for family in metric.describe()}
    names |= {
        name.removesuffix("_total") if kind == "counter" else name for name, (kind, _, _) in COLLECTED.items()
    }
    return names


def app_metrics(urls: Urls) -> Iterator[Result]:
    check = "app /metrics exposes the metric contract"
    url = urls.app.rstrip("/") + "/metrics"
    headers = {"Authorization": f"Bearer {settings.METRICS_TOKEN}"} if settings.METRICS_TOKEN else {}
    try:
        text = request_text("GET", url, timeout=TIMEOUT, headers=headers).body
        families = {family.name for family in text_string_to_metric_families(text)}
    except OutboundError as exc:
        hint = " (is METRICS_TOKEN the token the app expects?)" if exc.kind == "unauthorized" else ""
        yield Result(check, FAIL, f"{url}: {exc.detail}{hint}")
        return
    except ValueError as exc:
        yield Result(check, FAIL, f"{url}: not the Prometheus text format: {exc}")
        return
    missing = sorted(contract_names() - families)
    if missing:
        yield Result(check, FAIL, f"{url} lacks: {', '.join(missing)}")
    else:
        yield Result(check, PASS, url)


def dependency_statuses(urls: Urls) -> Iterator[Result]:
    check = "dependency checks are fresh (beat and worker alive)"
    stale_after = timedelta(seconds=3 * settings.PROBE_INTERVAL_SECONDS)
    now = timezone.now()
    try:
        rows = list(DependencyStatus.objects.all())
    except DatabaseError as exc:
        yield Result(check, FAIL, f"cannot read the recorded statuses: {exc}".splitlines()[0])
        return
    if not rows:
        yield Result(check, FAIL, "no dependency has ever been checked: is celery beat running?")
        return
    stale = [
        f"{row.name} {int((now - row.checked_at).total_seconds())}s ago"
        for row in rows
        if now - row.checked_at > stale_after
    ]
    if stale:
        yield Result(check, FAIL, f"older than {stale_after.seconds}s: {', '.join(stale)}")
    else:
        yield Result(check, PASS, f"{len(rows)} dependencies, newest within {stale_after.seconds}s")


def runtime_checks(urls: Urls) -> tuple:
    return (
        ("prometheus", lambda: prometheus(urls)),
        ("alertmanager", lambda: alertmanager(urls)),
        ("grafana", lambda: grafana(urls)),
        ("app", lambda: app_metrics(urls)),
        ("dependencies", lambda: dependency_statuses(urls)),
        ("heartbeat", lambda: heartbeat(urls)),
    )
