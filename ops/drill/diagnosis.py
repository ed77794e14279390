"""Why the drill's alert did not reach the webhook: asked of Prometheus and Alertmanager.

Each link is asked in the order the alert travels (rule loaded → firing in Prometheus →
held by Alertmanager → delivered), and the first that does not hold is the answer, in
words an on-call person can act on. Anything that cannot be asked says so: a diagnosis
never raises.
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from ops.http import OutboundError, Timeout, request_json, request_text

TIMEOUT = Timeout(2.0, 5.0)
FAILED_NOTIFICATIONS = "alertmanager_notifications_failed_total"


def _prometheus() -> str:
    return settings.PROMETHEUS_URL.rstrip("/")


def _alertmanager() -> str:
    return settings.ALERTMANAGER_URL.rstrip("/")


def webhook_failures() -> float | None:
    """Alertmanager's own count of failed webhook deliveries (None: cannot be read)."""
    try:
        text = request_text("GET", f"{_alertmanager()}/metrics", timeout=TIMEOUT).body
    except OutboundError:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == FAILED_NOTIFICATIONS and sample.labels.get("integration") == "webhook":
                total += sample.value
    return total


def why_no_alert(alertname: str, failures_before: float | None) -> str:
    try:
        rules = request_json("GET", f"{_prometheus()}/api/v1/rules?type=alert", timeout=TIMEOUT).body
        names = {rule.get("name") for group in rules["data"]["groups"] for rule in group.get("rules", [])}
        if alertname not in names:
            return f"Prometheus at {_prometheus()} has no rule {alertname}: is the drill group loaded?"
        alerts = request_json("GET", f"{_prometheus()}/api/v1/alerts", timeout=TIMEOUT).body["data"]["alerts"]
        firing = [
            a for a in alerts if a["labels"].get("alertname") == alertname and a.get("state") == "firing"
        ]
        if not firing:
            return (
                f"Prometheus has not fired {alertname}: it does not see the halt "
                "(is the app scraped? investiq_killswitch_drill_halted in Prometheus?)"
            )
        query = f"{_alertmanager()}/api/v2/alerts?filter={quote(f'alertname={alertname}')}"
        held = request_json("GET", query, timeout=TIMEOUT).body
    except OutboundError as exc:
        return f"could not ask the monitoring chain why ({exc.detail})"
    except (KeyError, TypeError) as exc:
        return f"could not ask the monitoring chain why (unexpected answer: {exc!r})"
    if not held:
        return (
            f"Prometheus fires {alertname} but Alertmanager at {_alertmanager()} does not hold it: "
            "check Prometheus's alerting configuration"
        )
    after = webhook_failures()
    if failures_before is not None and after is not None and after > failures_before:
        return (
            f"Alertmanager delivered nothing — {after - failures_before:g} webhook deliveries failed: "
            "check the webhook token (an 'alerts' API token of this app) and URL"
        )
    return (
        f"Alertmanager holds {alertname} but nothing reached this app's webhook: check the drill route "
        "(console_only) and its group_wait, and the webhook URL"
    )


def why_not_resolved(alertname: str) -> str:
    try:
        alerts = request_json("GET", f"{_prometheus()}/api/v1/alerts", timeout=TIMEOUT).body["data"]["alerts"]
    except (OutboundError, KeyError, TypeError) as exc:
        return f"could not ask Prometheus why ({exc})"
    if any(a["labels"].get("alertname") == alertname for a in alerts):
        return f"Prometheus still has {alertname} active: it does not yet see the resume"
    return "Prometheus has resolved it but Alertmanager has not delivered the resolution (send_resolved?)"
