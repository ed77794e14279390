"""Silences from the console against a real Alertmanager (Debian's prometheus-alertmanager).

The project's alertmanager.yml runs on a free loopback port; the test sends it the same
alert the console shows (POST /api/v2/alerts), silences it from the console, and then
asks Alertmanager itself: the silence is there with the person's name and reason, and
the alert is suppressed by it. Expiring, the roles, bad input and Alertmanager down or
unconfigured are checked the same way, each also against the audit rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from django.db import DatabaseError, transaction
from django.test import Client
from django.utils import timezone

from ops.alerts.models import Alert, SilenceEvent
from ops.console.overview import Permissions
from ops.tests.conftest import make_user
from ops.tests.dependency_servers import SilentServer
from ops.tests.monitoring_files import runnable_copy, tool
from ops.tests.processes import free_port, stop_process
from ops.tests.test_monitoring_live import alertmanager_config, started, wait_for

LABELS = {"alertname": "HighLatency", "severity": "warning", "job": "investiq-api"}


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory) -> Iterator[str]:
    """A real Alertmanager with the project's alertmanager.yml (its webhook unreachable:
    these tests never need a delivery)."""
    tmp_path = tmp_path_factory.mktemp("alertmanager")
    binary = tool("prometheus-alertmanager")
    copy = runnable_copy(tmp_path, {"metrics_token": "unused", "alertmanager_webhook_token": "unused"})
    address = f"127.0.0.1:{free_port()}"
    process = started(
        [
            binary,
            f"--config.file={alertmanager_config(copy, f'http://127.0.0.1:{free_port()}')}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
            "--cluster.listen-address=",  # no gossip port on every interface
        ],
        tmp_path / "alertmanager.log",
    )
    url = f"http://{address}"
    try:
        wait_for("Alertmanager", lambda: requests.get(f"{url}/-/ready", timeout=3).ok)
        yield url
    except BaseException:
        print((tmp_path / "alertmanager.log").read_text()[-3000:])
        raise
    finally:
        stop_process(process)


@pytest.fixture
def am(alertmanager, settings) -> str:
    """The running Alertmanager, configured for the app, with no silence left from another test."""
    settings.ALERTMANAGER_URL = alertmanager
    for item in requests.get(f"{alertmanager}/api/v2/silences", timeout=5).json():
        if item["status"]["state"] != "expired":
            requests.delete(f"{alertmanager}/api/v2/silence/{item['id']}", timeout=5).raise_for_status()
    return alertmanager


def firing_alert(**labels: str) -> Alert:
    labels = {**LABELS, **labels}
    return Alert.objects.create(
        fingerprint=f"{abs(hash(tuple(sorted(labels.items())))):x}"[:16],
        starts_at=timezone.now() - timedelta(minutes=3),
        status="firing",
        alertname=labels["alertname"],
        severity=labels.get("severity", ""),
        summary="p95 latency above 1 s",
        runbook_url=f"monitoring/README.md#{labels['alertname'].lower()}",
        labels=labels,
    )


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def silences_in(am: str) -> list[dict]:
    return [
        s for s in requests.get(f"{am}/api/v2/silences", timeout=5).json() if s["status"]["state"] == "active"
    ]


def post_alert_to(am: str, labels: dict) -> None:
    """The same alert, as Prometheus would send it, so Alertmanager can suppress it."""
    response = requests.post(f"{am}/api/v2/alerts", json=[{"labels": labels}], timeout=5)
    response.raise_for_status()


def alert_state_in(am: str, labels: dict) -> dict:
    for item in requests.get(f"{am}/api/v2/alerts", timeout=5).json():
        if item["labels"] == labels:
            return item["status"]
    raise AssertionError(f"Alertmanager has no alert {labels}")


def test_an_operator_silences_a_firing_alert_in_alertmanager_with_name_reason_and_audit(db, am, operator):
    alert = firing_alert()
    post_alert_to(am, alert.labels)
    client = client_for(operator)

    page = client.get("/").content.decode()
    assert f'href="/console/alerts/{alert.pk}/silence"' in page
    form = client.get(f"/console/alerts/{alert.pk}/silence")
    assert form.status_code == 200 and b'name="reason"' in form.content

    response = client.post(
        f"/console/alerts/{alert.pk}/silence", {"duration": "2h", "reason": "known slow deploy, INC-42"}
    )
    assert response.status_code == 302 and response["Location"] == "/"

    [made] = silences_in(am)
    assert made["createdBy"] == operator.get_username()
    assert made["comment"] == "known slow deploy, INC-42"
    assert {(m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in made["matchers"]} == {
        (name, value, False, True) for name, value in LABELS.items()
    }
    length = timezone.datetime.fromisoformat(made["endsAt"]) - timezone.datetime.fromisoformat(
        made["startsAt"]
    )
    assert timedelta(hours=2) - timedelta(seconds=5) <= length <= timedelta(hours=2)
    # Alertmanager itself now holds the alert's notifications back.
    wait_for("the alert suppressed", lambda: alert_state_in(am, alert.labels)["silencedBy"] == [made["id"]])

    [event] = SilenceEvent.objects.all()
    assert (event.action, event.silence_id, event.actor, event.alertname, event.duration) == (
        "created",
        made["id"],
        operator.get_username(),
        "HighLatency",
        "2h",
    )
    assert event.reason == "known slow deploy, INC-42"
    # The console shows the silence and its audit row.
    page = client.get("/").content.decode()
    assert f'data-testid="silence-{made["id"]}"' in page
    assert f'data-testid="silence-event-{event.pk}"' in page and "known slow deploy, INC-42" in page


def test_a_supervisor_expires_a_silence_early_and_it_is_audited(db, am, supervisor, operator):
    alert = firing_alert()
    client_for(operator).post(f"/console/alerts/{alert.pk}/silence", {"duration": "1h", "reason": "noisy"})
    [made] = silences_in(am)

    response = client_for(supervisor).post(f"/console/silences/{made['id']}/expire")
    assert response.status_code == 302
    assert silences_in(am) == []
    expired = SilenceEvent.objects.get(action="expired")
    assert (expired.silence_id, expired.actor, expired.alertname, expired.reason) == (
        made["id"],
        supervisor.get_username(),
        "HighLatency",
        "noisy",
    )
    # A second expiry is refused: it has already ended; nothing more recorded.
    again = client_for(supervisor).post(f"/console/silences/{made['id']}/expire")
    assert again.status_code == 400 and b"already ended" in again.content
    assert SilenceEvent.objects.count() == 2


def test_a_viewer_sees_silences_but_gets_403_naming_the_role(db, am, viewer, operator):
    alert = firing_alert()
    client_for(operator).post(f"/console/alerts/{alert.pk}/silence", {"duration": "1h", "reason": "noisy"})
    [made] = silences_in(am)
    client = client_for(viewer)

    page = client.get("/").content.decode()
    assert f'data-testid="silence-{made["id"]}"' in page
    assert "Silencing needs the operator or supervisor role." in page
    form = client.get(f"/console/alerts/{alert.pk}/silence").content.decode()
    assert "Silencing needs the operator or supervisor role." in form and 'name="reason"' not in form
    assert f'href="/console/alerts/{alert.pk}/silence"' not in page

    refused = client.post(f"/console/alerts/{alert.pk}/silence", {"duration": "1h", "reason": "x"})
    assert refused.status_code == 403
    assert (
        b"Silencing an alert or expiring a silence needs the operator or supervisor role." in refused.content
    )
    assert client.post(f"/console/silences/{made['id']}/expire").status_code == 403
    # The permission is checked before anything else, even whether the alert exists.
    assert client.post("/console/alerts/999999/silence", {"duration": "1h", "reason": "x"}).status_code == 403
    assert len(silences_in(am)) == 1 and SilenceEvent.objects.count() == 1


@pytest.mark.parametrize(
    "data, words",
    [
        ({"duration": "1h", "reason": "  "}, b"A reason is required"),
        ({"duration": "1h"}, b"A reason is required"),
        ({"duration": "1y", "reason": "ok"}, b"Choose how long to silence for"),
        ({"reason": "ok"}, b"Choose how long to silence for"),
        ({"duration": "1h", "reason": "a\x00b"}, b"NUL character"),
        ({"duration": "1h\x00", "reason": "ok"}, b"Choose how long to silence for"),
        ({"duration": "1h", "reason": "x" * 1001}, b"longer than 1000"),
    ],
)
def test_bad_input_gets_400_and_changes_nothing(db, am, operator, data, words):
    alert = firing_alert()
    response = client_for(operator).post(f"/console/alerts/{alert.pk}/silence", data)
    assert response.status_code == 400
    assert words in response.content
    assert silences_in(am) == [] and not SilenceEvent.objects.exists()


def test_bad_ids_and_unsilenceable_alerts_are_refused(db, am, operator):
    client = client_for(operator)
    assert client.post("/console/alerts/999999/silence", {"duration": "1h", "reason": "x"}).status_code == 404
    huge = client.post(f"/console/alerts/{10**30}/silence", {"duration": "1h", "reason": "x"})
    assert huge.status_code == 404
    response = client.post("/console/silences/not-a-uuid/expire")
    assert response.status_code == 400 and b"not an Alertmanager silence id" in response.content
    unknown = client.post("/console/silences/00000000-0000-0000-0000-000000000000/expire")
    assert unknown.status_code == 400 and b"has no silence" in unknown.content
    drill = firing_alert(alertname="ConsoleDrill", console_only="true")
    assert b"console-only alert" in client.get("/").content
    refused = client.post(f"/console/alerts/{drill.pk}/silence", {"duration": "1h", "reason": "x"})
    assert refused.status_code == 400 and b"console-only alert" in refused.content
    resolved = firing_alert(alertname="Gone")
    Alert.objects.filter(pk=resolved.pk).update(status="resolved", ends_at=timezone.now())
    gone = client.post(f"/console/alerts/{resolved.pk}/silence", {"duration": "1h", "reason": "x"})
    assert gone.status_code == 400 and b"no longer firing" in gone.content
    assert silences_in(am) == [] and not SilenceEvent.objects.exists()


def test_alertmanager_down_says_so_and_records_nothing(db, settings, operator):
    settings.ALERTMANAGER_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    alert = firing_alert()
    client = client_for(operator)
    page = client.get("/").content.decode()
    assert "Silences cannot be shown or changed: Alertmanager at" in page and "cannot be reached" in page
    response = client.post(f"/console/alerts/{alert.pk}/silence", {"duration": "1h", "reason": "noisy"})
    assert response.status_code == 503
    assert (
        b"Nothing changed: Alertmanager at" in response.content and b"cannot be reached" in response.content
    )
    assert not SilenceEvent.objects.exists()


def test_an_alertmanager_that_never_answers_is_named_with_its_timeout(db, settings, operator):
    alert = firing_alert()
    client = client_for(operator)
    with SilentServer() as silent:
        settings.ALERTMANAGER_URL = silent.url()
        page = client.get("/").content.decode()
        assert "cannot be reached: no answer within 1s" in page
        response = client.post(f"/console/alerts/{alert.pk}/silence", {"duration": "1h", "reason": "noisy"})
    assert response.status_code == 503 and b"no answer within 5s" in response.content
    assert not SilenceEvent.objects.exists()


def test_no_alertmanager_configured_turns_the_controls_off_saying_why(db, settings, operator):
    settings.ALERTMANAGER_URL = ""
    alert = firing_alert()
    client = client_for(operator)
    page = client.get("/").content.decode()
    assert "Silencing is off: Alertmanager is not configured (ALERTMANAGER_URL)." in page
    assert "Alertmanager is not configured (set ALERTMANAGER_URL)" in page
    response = client.post(f"/console/alerts/{alert.pk}/silence", {"duration": "1h", "reason": "noisy"})
    assert response.status_code == 503 and b"not configured" in response.content
    assert not SilenceEvent.objects.exists()


def test_silence_events_are_append_only(db):
    event = SilenceEvent.objects.create(
        action="created",
        silence_id="0b0e4b8a-0000-4000-8000-000000000000",
        actor="alice",
        alertname="HighLatency",
        duration="1h",
        ends_at=timezone.now(),
        reason="noisy",
    )
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        SilenceEvent.objects.filter(pk=event.pk).update(reason="nothing to see")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        SilenceEvent.objects.filter(pk=event.pk).delete()


def test_roles_hold_the_silence_permission_as_declared(db):
    assert not Permissions.of(make_user("v", "ops_viewer")).can_silence
    assert Permissions.of(make_user("o", "ops_operator")).can_silence
    assert Permissions.of(make_user("s", "ops_supervisor")).can_silence


def test_the_admin_shows_silence_events_read_only_to_every_role(db, viewer, supervisor):
    SilenceEvent.objects.create(
        action="created",
        silence_id="0b0e4b8a-0000-4000-8000-000000000001",
        actor="alice",
        alertname="HighLatency",
        duration="1h",
        ends_at=timezone.now(),
        reason="deploy in progress",
    )
    for user in (viewer, supervisor):
        page = client_for(user).get("/admin/ops/silenceevent/")
        assert page.status_code == 200 and "deploy in progress" in page.content.decode()
        assert client_for(user).get("/admin/ops/silenceevent/add/").status_code == 403


def test_a_silence_made_in_alertmanager_itself_is_listed_and_can_be_expired_here(db, am, operator):
    now = timezone.now()
    made = requests.post(
        f"{am}/api/v2/silences",
        json={
            "matchers": [{"name": "alertname", "value": "DependencyDown", "isRegex": False, "isEqual": True}],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "someone-in-the-am-ui",
            "comment": "made in Alertmanager's UI",
        },
        timeout=5,
    ).json()["silenceID"]
    client = client_for(operator)
    page = client.get("/").content.decode()
    assert f'data-testid="silence-{made}"' in page and "by someone-in-the-am-ui" in page
    assert client.post(f"/console/silences/{made}/expire").status_code == 302
    assert silences_in(am) == []
    event = SilenceEvent.objects.get()
    assert (event.action, event.alertname, event.actor, event.reason) == (
        "expired",
        "DependencyDown",
        operator.get_username(),
        "made in Alertmanager's UI",
    )
