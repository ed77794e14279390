"""Words that are true (issue 18): runbook links that are links, a favicon, every 403
naming the role it needs, and the admin's times in UTC, 24-hour, with seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from ops.alerts.models import Alert
from ops.tests.conftest import make_user
from ops.tests.monitoring_files import alert_rules
from ops.trading import service
from ops.trading.models import State, TradingEvent, TradingState


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- runbooks ----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_shipped_alert_has_a_runbook_page_with_its_section(db, viewer, rule):
    response = client_for(viewer).get(f"/console/runbooks/{rule['alert']}")
    assert response.status_code == 200
    page = response.content.decode()
    assert f"<h1>Runbook: {rule['alert']}</h1>" in page
    # The section's own text, rendered: it names the rule's severity in bold.
    severity = rule["labels"]["severity"]
    assert re.search(rf"<strong>[^<]*\b{severity}\b", page, re.IGNORECASE), severity


def test_a_firing_alerts_runbook_is_a_link_to_its_page(db, viewer):
    Alert.objects.create(
        fingerprint="ab12",
        starts_at=datetime(2026, 12, 2, 18, 0, tzinfo=UTC),
        status="firing",
        alertname="HighLatency",
        runbook_url="monitoring/README.md#highlatency",
        labels={"alertname": "HighLatency"},
    )
    page = client_for(viewer).get("/").content.decode()
    assert '<a href="/console/runbooks/HighLatency">Runbook for HighLatency</a>' in page


def test_an_unknown_runbook_is_404_saying_so_and_the_page_needs_a_login(db, viewer):
    assert Client().get("/console/runbooks/HighLatency").status_code == 302
    response = client_for(viewer).get("/console/runbooks/NoSuchAlert")
    assert response.status_code == 404 and b"There is no runbook for NoSuchAlert" in response.content
    odd = client_for(viewer).get("/console/runbooks/%3Cscript%3E")
    assert odd.status_code == 404 and b"<script>" not in odd.content


def test_runbook_markdown_is_rendered_without_raw_html():
    from ops.console.runbooks import render

    html = render("**Warning.** <script>alert(1)</script> [x](javascript:alert(1))")
    assert "<strong>Warning.</strong>" in html
    assert "<script>" not in html and 'href="javascript:' not in html


# --- favicon -----------------------------------------------------------------------------


def test_the_favicon_is_served_without_a_login(db):
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    body = b"".join(response) if response.streaming else response.content
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO header


# --- 403s name the role ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data", "words"),
    [
        (
            "/console/halt",
            {"halt-scope_0": "global", "halt-state": "HALTED", "halt-reason": "x", "halt-confirm": "HALT"},
            "Halting trading or setting it to reducing-only needs the operator or supervisor role.",
        ),
        (
            "/console/resume",
            {"resume-scope_0": "global", "resume-state": "ACTIVE", "resume-reason": "x"},
            "Resuming trading (or requesting a resume) needs the supervisor role.",
        ),
    ],
)
def test_a_console_403_names_the_role_needed(db, viewer, path, data, words):
    response = client_for(viewer).post(path, data)
    assert response.status_code == 403
    assert words in response.content.decode()


def test_an_approval_403_names_the_supervisor_role(db, operator, supervisor):
    service.halt("global", reason="r", actor=service.Actor.of(supervisor))
    made = service.request_resume("global", reason="fixed", actor=service.Actor.of(supervisor))
    response = client_for(operator).post(f"/console/requests/{made.pk}/approve")
    assert response.status_code == 403
    assert "Approving a resume request needs the supervisor role." in response.content.decode()


def test_the_services_refusal_names_the_role(db, operator):
    with pytest.raises(service.NotPermitted, match="needs the supervisor role"):
        service.request_resume("global", reason="x", actor=service.Actor.of(operator))


def test_an_admin_403_names_the_role_and_the_roles(db, operator):
    response = client_for(operator).get("/admin/ops/trade/book-fill/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "Booking a fill past the gate needs the supervisor role" in page
    assert "<strong>supervisor</strong> also resumes" in page
    # A page Django's admin refuses on its own (no message) still names the roles.
    refused = client_for(operator).get("/admin/auth/user/add/")
    assert refused.status_code == 403 and "<strong>operator</strong>" in refused.content.decode()


def test_a_form_sent_without_its_csrf_token_is_refused_in_words(db, operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post("/console/halt", {})
    assert response.status_code == 403
    assert b"No role is missing for this: nothing was changed." in response.content


def test_an_api_403_keeps_its_shape_and_says_what_the_token_needs(db):
    from ops.models import ApiClient
    from ops.tests.conftest import ApiTestClient

    _, token = ApiClient.issue("reader", "status")
    response = ApiTestClient(token=token).post_json("/api/v1/analyses", {})
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "forbidden_scope"
    assert "lacks the 'analyses' scope that this endpoint needs (record analyses)" in body["detail"]
    assert "manage.py create_api_token NAME --scopes analyses" in body["detail"]


# --- the admin's times -------------------------------------------------------------------


def test_the_admin_shows_times_in_utc_24_hour_with_seconds(db, supervisor):
    TradingState.objects.filter(scope="global").update(
        state=State.HALTED, since=datetime(2026, 12, 2, 18, 26, 7, tzinfo=UTC)
    )
    page = client_for(supervisor).get("/admin/ops/tradingstate/").content.decode()
    assert "2026-12-02 18:26:07 UTC" in page
    assert "p.m." not in page
    service.halt("symbol:TSLA", reason="r", actor=service.Actor.of(supervisor))
    event = TradingEvent.objects.get()
    detail = client_for(supervisor).get(f"/admin/ops/tradingevent/{event.pk}/change/").content.decode()
    assert f"{event.created_at:%Y-%m-%d %H:%M:%S} UTC" in detail


def test_a_person_without_any_role_is_told_the_roles(db):
    response = client_for(make_user("stan")).get("/")
    assert response.status_code == 403
    assert b"viewer, operator or supervisor" in response.content
