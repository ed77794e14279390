"""The Alertmanager webhook, the alert store and alert-driven kill-switch actions."""

from __future__ import annotations

import copy
import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ops.alerts.models import Alert, Heartbeat
from ops.api.models import ApiClient
from ops.tests.conftest import ApiTestClient
from ops.trading import service
from ops.trading.models import State, TradingEvent, TradingState

WEBHOOK = "/api/v1/alerts/alertmanager"
ALERTS = "/api/v1/alerts"


def am_alert(name: str = "CircuitBreakerTripped", status: str = "firing", **overrides) -> dict:
    """One alert as Alertmanager 0.25 sends it in a webhook notification."""
    alert = {
        "status": status,
        "labels": {"alertname": name, "severity": "critical", "job": "investiq-api", "instance": "web:8000"},
        "annotations": {
            "summary": f"{name} summary",
            "description": f"{name} description",
            "runbook_url": f"https://github.com/investiq/ops/blob/main/monitoring/README.md#{name.lower()}",
        },
        "startsAt": "2026-11-27T14:30:00.123456789Z",
        "endsAt": "2026-11-27T14:35:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=investiq_trading_halted+%3D%3D+1",
        "fingerprint": "c4b2a1f0e9d8c7b6",
    }
    alert.update(overrides)
    return alert


def notification(*alerts: dict, status: str | None = None) -> dict:
    firing = any(alert["status"] == "firing" for alert in alerts)
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="CircuitBreakerTripped"}',
        "truncatedAlerts": 0,
        "status": status or ("firing" if firing else "resolved"),
        "receiver": "investiq-console",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"] if alerts else ""},
        "commonLabels": {"severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@pytest.fixture
def alertmanager(db) -> ApiTestClient:
    _, token = ApiClient.issue("alertmanager", "alerts")
    return ApiTestClient(token=token)


@pytest.fixture
def reader(db) -> ApiTestClient:
    _, token = ApiClient.issue("console-reader", "status")
    return ApiTestClient(token=token)


def deliver(client: ApiTestClient, *alerts: dict):
    return client.post_json(WEBHOOK, notification(*alerts))


def test_a_firing_alert_is_stored_and_listed(alertmanager, reader):
    response = deliver(alertmanager, am_alert())
    assert response.status_code == 200 and response.json() == {"stored": 1}
    listed = reader.get_json(ALERTS).json()["alerts"]
    assert len(listed) == 1
    alert = listed[0]
    assert alert["fingerprint"] == "c4b2a1f0e9d8c7b6" and alert["alertname"] == "CircuitBreakerTripped"
    assert alert["status"] == "firing" and alert["severity"] == "critical"
    assert alert["summary"] == "CircuitBreakerTripped summary"
    assert alert["description"] == "CircuitBreakerTripped description"
    assert alert["runbook_url"].endswith("#circuitbreakertripped")
    assert alert["labels"]["job"] == "investiq-api"
    assert alert["starts_at"].startswith("2026-11-27T14:30:00.123456")
    assert alert["ends_at"] is None and alert["last_received_at"]


def test_several_alerts_in_one_group_are_each_stored(alertmanager):
    alerts = [am_alert(f"Alert{n}", fingerprint=f"{n:016x}") for n in range(5)]
    assert deliver(alertmanager, *alerts).json() == {"stored": 5}
    assert Alert.objects.count() == 5


def test_a_redelivery_is_idempotent(alertmanager):
    deliver(alertmanager, am_alert())
    first = Alert.objects.get()
    deliver(alertmanager, am_alert())
    again = Alert.objects.get()
    assert again.pk == first.pk and again.last_received_at >= first.last_received_at


def test_resolved_closes_the_occurrence(alertmanager, reader):
    deliver(alertmanager, am_alert())
    deliver(alertmanager, am_alert(status="resolved"))
    alert = Alert.objects.get()
    assert alert.status == "resolved" and alert.ends_at.isoformat().startswith("2026-11-27T14:35")
    assert reader.get_json(ALERTS).json()["alerts"] == []
    assert len(reader.get_json(ALERTS + "?status=resolved").json()["alerts"]) == 1


def test_a_late_firing_redelivery_never_reopens_a_resolved_alert(alertmanager):
    deliver(alertmanager, am_alert(status="resolved"))  # out of order: resolved arrives first
    deliver(alertmanager, am_alert())
    deliver(alertmanager, am_alert())
    assert Alert.objects.get().status == "resolved"


def test_a_new_starts_at_is_a_new_occurrence(alertmanager):
    deliver(alertmanager, am_alert())
    deliver(alertmanager, am_alert(status="resolved"))
    deliver(alertmanager, am_alert(startsAt="2026-11-27T15:00:00Z"))
    assert list(Alert.objects.newest_first().values_list("status", flat=True)) == ["firing", "resolved"]


def with_bad(mutate) -> dict:
    payload = notification(am_alert(fingerprint="aaaaaaaaaaaaaaaa"), am_alert())
    mutate(payload)
    return payload


MALFORMED = {
    "version 3": with_bad(lambda p: p.update(version="3")),
    "version missing": with_bad(lambda p: p.pop("version")),
    "version as number": with_bad(lambda p: p.update(version=4)),
    "alerts missing": with_bad(lambda p: p.pop("alerts")),
    "alerts not a list": with_bad(lambda p: p.update(alerts={"a": 1})),
    "alert not an object": with_bad(lambda p: p["alerts"].append("firing")),
    "fingerprint missing": with_bad(lambda p: p["alerts"][1].pop("fingerprint")),
    "fingerprint not hex": with_bad(lambda p: p["alerts"][1].update(fingerprint="not-a-fingerprint")),
    "fingerprint a number": with_bad(lambda p: p["alerts"][1].update(fingerprint=123)),
    "status unknown": with_bad(lambda p: p["alerts"][1].update(status="pending")),
    "status missing": with_bad(lambda p: p["alerts"][1].pop("status")),
    "startsAt missing": with_bad(lambda p: p["alerts"][1].pop("startsAt")),
    "startsAt not a time": with_bad(lambda p: p["alerts"][1].update(startsAt="yesterday")),
    "startsAt without offset": with_bad(lambda p: p["alerts"][1].update(startsAt="2026-11-27T14:30:00")),
    "startsAt zero time": with_bad(lambda p: p["alerts"][1].update(startsAt="0001-01-01T00:00:00Z")),
    "endsAt not a time": with_bad(lambda p: p["alerts"][1].update(endsAt=17)),
    "labels not strings": with_bad(lambda p: p["alerts"][1].update(labels={"alertname": 1})),
    "annotations a list": with_bad(lambda p: p["alerts"][1].update(annotations=["x"])),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_notification_is_refused_whole(alertmanager, case):
    response = alertmanager.post_json(WEBHOOK, copy.deepcopy(MALFORMED[case]))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_notification" and body["fields"]
    assert not Alert.objects.exists()  # not even the valid first alert


@pytest.mark.parametrize("body", ["not json", "[]", '"a string"', "{"])
def test_a_body_that_is_not_a_json_object_is_refused(alertmanager, body):
    response = alertmanager.post_json(WEBHOOK, body)
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    assert not Alert.objects.exists()


def test_the_webhook_has_the_api_body_limit(alertmanager, settings):
    settings.API_MAX_BODY_BYTES = 1024
    alerts = [am_alert(fingerprint=f"{n:016x}") for n in range(10)]
    assert alertmanager.post_json(WEBHOOK, notification(*alerts)).status_code == 413
    assert not Alert.objects.exists()


def test_the_webhook_needs_a_token(db):
    response = ApiTestClient().post_json(WEBHOOK, notification(am_alert()), token=None)
    assert response.status_code == 401
    assert not Alert.objects.exists()


ENDPOINTS = {
    "trades": (
        "post",
        "/api/v1/trades",
        {"client_order_id": "s-1", "symbol": "AAPL", "side": "buy", "quantity": "1", "price": "1"},
    ),
    "analyses": (
        "post",
        "/api/v1/analyses",
        {"symbol": "AAPL", "signal": "buy", "confidence": "0.5", "model_version": "m-1"},
    ),
    "alerts": ("post", WEBHOOK, notification(am_alert())),
    "status": ("get", "/api/v1/trading/status", None),
}
STATUS_READS = {"status": ("get", ALERTS, None)}


@pytest.mark.parametrize(
    ("needed", "method", "path", "body"),
    [(scope, *call) for scope, call in ENDPOINTS.items()] + [("status", *STATUS_READS["status"])],
)
def test_every_endpoint_needs_its_scope(db, needed, method, path, body):
    others = ",".join(scope for scope in ENDPOINTS if scope != needed)
    _, without = ApiClient.issue("without", others)
    _, only = ApiClient.issue("only", needed)

    def call(token):
        client = ApiTestClient(token=token)
        return client.post_json(path, body) if method == "post" else client.get_json(path)

    refused = call(without)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden_scope" and needed in refused.json()["detail"]
    assert call(only).status_code in (200, 201)


def test_a_default_token_cannot_deliver_alerts(api):
    assert api.post_json(WEBHOOK, notification(am_alert())).status_code == 403


@pytest.mark.parametrize(
    "query", ["?status=open", "?limit=0", "?limit=501", "?limit=ten", "?limit=-1", "?since=1", "?limit=١٠"]
)
def test_the_alert_list_rejects_bad_parameters(reader, query):
    response = reader.get_json(ALERTS + query)
    assert response.status_code == 400 and response.json()["error"] == "validation_failed"


def test_the_alert_list_is_newest_first_and_bounded(alertmanager, reader):
    for hour in range(10, 16):
        deliver(alertmanager, am_alert(startsAt=f"2026-11-27T{hour}:00:00Z"))
    alerts = reader.get_json(ALERTS + "?status=all&limit=3").json()["alerts"]
    assert [alert["starts_at"][11:13] for alert in alerts] == ["15", "14", "13"]


# --- alert-driven actions ------------------------------------------------------------


@pytest.fixture
def broker_alert_halts(settings):
    settings.ALERT_ACTIONS = {"BrokerUnreachable": "global:HALTED", "MarketDataStale": "symbol:TSLA:REDUCING"}


def global_state() -> str:
    row = TradingState.objects.filter(scope="global").first()
    return row.state if row else State.ACTIVE


def test_alerts_trip_nothing_unless_mapped(alertmanager):
    deliver(alertmanager, am_alert("BrokerUnreachable"))
    assert global_state() == State.ACTIVE and not TradingEvent.objects.exists()


@pytest.fixture
def halt_calls(monkeypatch) -> list:
    """Every kill-switch call the alert actions make (a halt of a halted scope writes no
    event, so counting events alone could not tell one call from two)."""
    from ops.alerts import actions

    calls = []
    lock = threading.Lock()
    real = actions.kill_switch.halt

    def counting(*args, **kwargs):
        with lock:
            calls.append(kwargs.get("source"))
        return real(*args, **kwargs)

    monkeypatch.setattr(actions.kill_switch, "halt", counting)
    return calls


def test_a_mapped_firing_alert_trips_the_kill_switch_once_per_occurrence(
    alertmanager, broker_alert_halts, halt_calls
):
    deliver(alertmanager, am_alert("BrokerUnreachable"))
    deliver(alertmanager, am_alert("BrokerUnreachable"))  # redelivery
    assert halt_calls == ["alert:BrokerUnreachable"]
    event = TradingEvent.objects.get()
    assert (event.scope, event.to_state, event.source) == ("global", "HALTED", "alert:BrokerUnreachable")
    assert event.actor == "system:alertmanager" and "BrokerUnreachable summary" in event.reason
    assert Alert.objects.get().action_event == event


def test_a_mapped_alert_can_set_a_scope_to_reducing(alertmanager, broker_alert_halts):
    deliver(alertmanager, am_alert("MarketDataStale"))
    assert TradingState.objects.get(scope="symbol:TSLA").state == State.REDUCING


def test_a_console_only_alert_is_never_acted_on_even_if_mapped(alertmanager, settings):
    # ops.E004 refuses this mapping at start-up; act_on holds it anyway (the drill's alert
    # must never turn a drill into a real halt).
    settings.ALERT_ACTIONS = {"KillSwitchDrillHalted": "global:HALTED"}
    alert = am_alert("KillSwitchDrillHalted")
    alert["labels"]["console_only"] = "true"
    deliver(alertmanager, alert)
    assert global_state() == State.ACTIVE and not TradingEvent.objects.exists()


def test_a_resolved_alert_never_resumes(alertmanager, broker_alert_halts):
    deliver(alertmanager, am_alert("BrokerUnreachable"))
    deliver(alertmanager, am_alert("BrokerUnreachable", status="resolved"))
    assert global_state() == State.HALTED and TradingEvent.objects.count() == 1


def test_a_persons_resume_is_not_overruled_by_redeliveries(
    alertmanager, broker_alert_halts, supervisor, one_person_resume
):
    deliver(alertmanager, am_alert("BrokerUnreachable"))
    service.resume("global", reason="broker is back, checked by hand", actor=service.Actor.of(supervisor))
    deliver(alertmanager, am_alert("BrokerUnreachable"))  # the same occurrence, redelivered
    assert global_state() == State.ACTIVE
    # A new occurrence (new startsAt) is a new outage: it trips again.
    deliver(alertmanager, am_alert("BrokerUnreachable", startsAt="2026-11-27T16:00:00Z"))
    assert global_state() == State.HALTED


def test_an_alert_first_seen_resolved_trips_nothing(alertmanager, broker_alert_halts):
    deliver(alertmanager, am_alert("BrokerUnreachable", status="resolved"))
    assert global_state() == State.ACTIVE


def test_concurrent_deliveries_store_one_occurrence_and_trip_once(
    transactional_db, postgres, wide_pool, broker_alert_halts, halt_calls
):
    _, token = ApiClient.issue("alertmanager", "alerts")
    body = json.dumps(notification(am_alert("BrokerUnreachable")))
    barrier = threading.Barrier(6)
    statuses = []

    def post() -> None:
        try:
            barrier.wait()
            statuses.append(ApiTestClient(token=token).post_json(WEBHOOK, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert Alert.objects.count() == 1
    assert TradingEvent.objects.filter(source="alert:BrokerUnreachable").count() == 1
    assert halt_calls == ["alert:BrokerUnreachable"]


@pytest.mark.parametrize("action", [5, ["global:HALTED"], None, {"scope": "global"}])
def test_a_mapping_that_is_not_a_string_still_stores_the_alert(alertmanager, settings, action):
    settings.ALERT_ACTIONS = {"BrokerUnreachable": action}
    assert deliver(alertmanager, am_alert("BrokerUnreachable")).status_code == 200
    assert Alert.objects.get().status == "firing"
    assert not TradingEvent.objects.exists()


def test_an_absurdly_long_limit_is_a_400_not_a_500(reader):
    response = reader.get_json(ALERTS + "?limit=" + "9" * 5000)
    assert response.status_code == 400 and response.json()["fields"]["limit"]


# --- The Watchdog heartbeat and alert storms ---------------------------------------------


def watchdog(**overrides) -> dict:
    alert = am_alert("Watchdog", fingerprint="00000000000000aa", **overrides)
    alert["labels"]["severity"] = "none"
    return alert


def test_a_watchdog_delivery_is_a_heartbeat_not_an_alert(alertmanager, reader):
    assert reader.get_json(ALERTS).json()["monitoring"] == {
        "state": "not_connected",
        "last_heartbeat_at": None,
        "heartbeat_age_seconds": None,
        "heartbeat_max_age_seconds": 300,
    }
    assert deliver(alertmanager, watchdog()).json() == {"stored": 0}
    assert deliver(alertmanager, watchdog(), am_alert()).json() == {"stored": 1}
    assert list(Alert.objects.values_list("alertname", flat=True)) == ["CircuitBreakerTripped"]
    assert Heartbeat.objects.get().deliveries == 2
    body = reader.get_json(ALERTS).json()
    assert [a["alertname"] for a in body["alerts"]] == ["CircuitBreakerTripped"]
    assert body["monitoring"]["state"] == "connected" and body["monitoring"]["heartbeat_age_seconds"] == 0


def test_a_resolved_watchdog_is_no_heartbeat(alertmanager):
    # Alertmanager resolves the Watchdog when Prometheus stops sending it: the opposite.
    deliver(alertmanager, watchdog(status="resolved"))
    assert not Heartbeat.objects.exists() and not Alert.objects.exists()


def test_an_old_heartbeat_is_silent(alertmanager, reader, settings):
    settings.MONITORING_HEARTBEAT_MAX_AGE_SECONDS = 60
    deliver(alertmanager, watchdog())
    Heartbeat.objects.update(last_received_at=timezone.now() - timedelta(seconds=61))
    monitoring = reader.get_json(ALERTS).json()["monitoring"]
    assert monitoring["state"] == "silent" and monitoring["heartbeat_age_seconds"] >= 61
    assert monitoring["heartbeat_max_age_seconds"] == 60
    deliver(alertmanager, watchdog())  # the chain is back
    assert reader.get_json(ALERTS).json()["monitoring"]["state"] == "connected"


def storm(count: int, offset: int = 0) -> list[dict]:
    return [am_alert(f"Storm{n}", fingerprint=f"{offset + n:016x}") for n in range(count)]


def test_a_notification_costs_the_same_statements_whatever_its_size(alertmanager):
    writes = ("INSERT", "UPDATE", "DELETE")
    counts = {}
    deliver(alertmanager, watchdog())  # the token's first use and the heartbeat row, once
    for size in (1, 50):
        alerts = storm(size, offset=size * 1000)
        with CaptureQueriesContext(connection) as first:
            assert deliver(alertmanager, *alerts).json() == {"stored": size}
        with CaptureQueriesContext(connection) as again:
            assert deliver(alertmanager, *alerts).json() == {"stored": size}
        counts[size] = len(first.captured_queries)
        # The redelivery of an unchanged alert writes nothing.
        assert [q["sql"] for q in again.captured_queries if q["sql"].lstrip().startswith(writes)] == []
    assert counts[1] == counts[50], counts
    assert Alert.objects.count() == 51


def test_a_changed_alert_in_a_redelivery_is_written(alertmanager):
    alerts = storm(3)
    deliver(alertmanager, *alerts)
    alerts[1]["annotations"]["summary"] = "worse now"
    alerts[2] = {**alerts[2], "status": "resolved", "endsAt": "2026-11-27T14:35:00Z"}
    deliver(alertmanager, *alerts)
    rows = {row.alertname: row for row in Alert.objects.all()}
    assert rows["Storm1"].summary == "worse now" and rows["Storm2"].status == "resolved"
    assert rows["Storm0"].last_received_at == rows["Storm0"].first_received_at
    assert rows["Storm1"].last_received_at > rows["Storm1"].first_received_at
