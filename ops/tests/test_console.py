"""The ops console at `/`: access, controls enforced on the server, bounded reads, CSP and Grafana."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ops.alerts.models import Alert
from ops.console import grafana
from ops.console.overview import bounded_count
from ops.health.models import DependencyStatus
from ops.models import Analysis, Trade
from ops.tests.conftest import make_user
from ops.trading import service
from ops.trading.models import ResumeRequest, State, TradingEvent, TradingState

HALT_GLOBAL = {
    "halt-scope_0": "global",
    "halt-state": "HALTED",
    "halt-reason": "broker feed frozen",
    "halt-confirm": "HALT",
}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def global_state() -> str:
    return TradingState.objects.get(scope="global").state


def unbounded_counts(queries: list[dict]) -> list[str]:
    return [q["sql"] for q in queries if re.search(r"COUNT\(", q["sql"], re.I) and "LIMIT" not in q["sql"]]


# --- who may see it ----------------------------------------------------------------------


def test_a_visitor_who_is_not_logged_in_gets_the_login_page(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/")


def test_staff_without_an_ops_role_get_403_saying_how_to_get_one(db):
    response = client_for(make_user("stan")).get("/")
    assert response.status_code == 403
    assert b"ops_user stan --role viewer" in response.content


def test_a_superuser_without_an_ops_role_gets_403_too(db):
    response = client_for(make_user("root", superuser=True)).get("/")
    assert response.status_code == 403


def test_a_person_with_a_role_but_no_staff_flag_gets_403(db):
    response = client_for(make_user("nick", "ops_supervisor", staff=False)).get("/")
    assert response.status_code == 403


def test_the_live_partial_needs_the_same_login(db, viewer):
    assert Client().get("/console/live").status_code == 302
    response = client_for(viewer).get("/console/live")
    assert response.status_code == 200
    assert b'data-testid="global-state"' in response.content
    assert b"<html" not in response.content


# --- what it shows -------------------------------------------------------------------------


def test_it_shows_the_state_dependencies_alerts_requests_and_timeline(db, operator, supervisor):
    now = timezone.now()
    service.halt("symbol:TSLA", reason="earnings gap", actor=service.Actor.of(operator))
    service.halt(
        "strategy:pairs", reason="model drift", actor=service.Actor.of(operator), to_state="REDUCING"
    )
    DependencyStatus.objects.create(
        name="alpaca", status="down", latency_ms=5012, detail="timeout", checked_at=now
    )
    DependencyStatus.objects.create(
        name="polygon", status="up", latency_ms=80, checked_at=now - timedelta(hours=1)
    )
    Alert.objects.create(
        fingerprint="f1",
        starts_at=now,
        status="firing",
        alertname="HighLatency",
        severity="warning",
        summary="p95 above 1 s",
        runbook_url="https://runbooks.example/HighLatency",
    )
    Alert.objects.create(fingerprint="f2", starts_at=now, status="resolved", alertname="OldNews")
    response = client_for(operator).get("/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="global-state"' in page and "ACTIVE" in page
    assert "symbol:TSLA" in page and "earnings gap" in page and "strategy:pairs" in page
    assert "DOWN" in page and "Last error: timeout" in page
    assert "UNKNOWN (STALE)" in page  # polygon's last check is an hour old
    assert "HighLatency" in page and "https://runbooks.example/HighLatency" in page
    assert "OldNews" not in page
    assert "model drift" in page and "otto-operator" in page  # the timeline


def test_a_viewer_sees_the_controls_disabled_with_the_reason(db, viewer):
    page = client_for(viewer).get("/").content.decode()
    assert page.count("<fieldset disabled") == 2
    assert "halting needs the operator or supervisor role" in page
    assert "resuming needs the supervisor role" in page


def test_an_operator_may_halt_but_sees_resume_disabled(db, operator):
    page = client_for(operator).get("/").content.decode()
    assert page.count("<fieldset disabled") == 1
    assert "resuming needs the supervisor role" in page


def test_the_24h_counts_leave_older_rows_out(db, operator):
    now = timezone.now()
    bulk_trades(3, now - timedelta(hours=1))
    bulk_trades(2, now - timedelta(hours=30), first=100)
    Analysis.objects.create(symbol="AAPL", signal="buy", confidence=Decimal("0.7"), model_version="m")
    response = client_for(operator).get("/")
    assert str(response.context["overview"].trades_24h) == "3"
    assert str(response.context["overview"].analyses_24h) == "1"


def test_a_count_past_its_cap_says_so(db):
    bulk_trades(5, timezone.now())
    count = bounded_count(Trade.objects.all(), cap=3)
    assert (count.value, count.capped, str(count)) == (3, True, "3+")


# --- controls, enforced by the server --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/console/halt", HALT_GLOBAL),
        ("/console/resume", {"resume-scope_0": "global", "resume-state": "ACTIVE", "resume-reason": "x"}),
    ],
)
def test_a_forged_post_from_a_viewer_is_403_and_writes_nothing(db, viewer, path, data):
    response = client_for(viewer).post(path, data)
    assert response.status_code == 403
    assert global_state() == State.ACTIVE
    assert not TradingEvent.objects.exists() and not ResumeRequest.objects.exists()


def test_a_forged_approval_from_an_operator_is_403_and_changes_nothing(db, operator, supervisor):
    service.halt("global", reason="r", actor=service.Actor.of(supervisor))
    made = service.request_resume("global", reason="fixed", actor=service.Actor.of(supervisor))
    response = client_for(operator).post(f"/console/requests/{made.pk}/approve")
    assert response.status_code == 403
    assert global_state() == State.HALTED
    assert ResumeRequest.objects.get().status == ResumeRequest.Status.PENDING


def test_a_post_without_the_csrf_token_is_refused(db, operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post("/console/halt", HALT_GLOBAL).status_code == 403
    assert global_state() == State.ACTIVE


def test_the_controls_are_post_only(db, supervisor):
    assert client_for(supervisor).get("/console/halt").status_code == 405


def test_an_operator_halts_a_symbol_and_is_told_the_gate_refuses(db, operator):
    data = {
        "halt-scope_0": "symbol",
        "halt-scope_1": "aapl",
        "halt-state": "HALTED",
        "halt-reason": "bad prints",
    }
    response = client_for(operator).post("/console/halt", data, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert TradingState.objects.get(scope="symbol:AAPL").state == State.HALTED
    event = TradingEvent.objects.get()
    assert (event.actor, event.origin, event.source, event.reason) == (
        "otto-operator",
        "web",
        "manual",
        "bad prints",
    )
    text = [str(m) for m in response.context["messages"]]
    assert text == [
        "symbol:AAPL: ACTIVE → HALTED. "
        "The pre-trade gate now refuses new trades for symbol:AAPL (423 trading_halted)."
    ]


def test_a_global_halt_needs_the_typed_confirmation(db, operator):
    unconfirmed = {**HALT_GLOBAL, "halt-confirm": ""}
    response = client_for(operator).post("/console/halt", unconfirmed)
    assert response.status_code == 400
    assert "type HALT to confirm" in response.content.decode()
    assert "broker feed frozen" in response.content.decode()  # what was typed is kept
    assert global_state() == State.ACTIVE and not TradingEvent.objects.exists()
    assert client_for(operator).post("/console/halt", HALT_GLOBAL).status_code == 302
    assert global_state() == State.HALTED


def test_a_global_reduce_needs_the_typed_confirmation_too(db, operator):
    data = {**HALT_GLOBAL, "halt-state": "REDUCING", "halt-confirm": ""}
    response = client_for(operator).post("/console/halt", data)
    assert response.status_code == 400
    assert (
        "Changing global to REDUCING restricts every trade: type HALT to confirm."
        in response.content.decode()
    )
    assert global_state() == State.ACTIVE and not TradingEvent.objects.exists()
    assert client_for(operator).post("/console/halt", {**data, "halt-confirm": "HALT"}).status_code == 302
    assert global_state() == State.REDUCING


def test_a_global_scope_with_a_name_is_refused_and_changes_nothing(db, operator):
    data = {**HALT_GLOBAL, "halt-state": "REDUCING", "halt-scope_1": "TSLA"}
    response = client_for(operator).post("/console/halt", data)
    assert response.status_code == 400
    assert "Global covers everything and takes no name" in response.content.decode()
    assert global_state() == State.ACTIVE and not TradingEvent.objects.exists()


def test_a_global_resume_needs_its_typed_confirmation(db, supervisor, one_person_resume):
    service.halt("global", reason="x", actor=service.Actor.of(supervisor))
    data = {"resume-scope_0": "global", "resume-state": "ACTIVE", "resume-reason": "fixed"}
    response = client_for(supervisor).post("/console/resume", data)
    assert response.status_code == 400
    assert "type RESUME to confirm" in response.content.decode()
    assert global_state() == State.HALTED
    assert (
        client_for(supervisor).post("/console/resume", {**data, "resume-confirm": "resume"}).status_code
        == 302
    )
    assert global_state() == State.ACTIVE


def test_a_refused_submit_leads_with_an_error_summary_linking_each_field(db, operator):
    response = client_for(operator).post(
        "/console/halt", {**HALT_GLOBAL, "halt-reason": "", "halt-confirm": ""}
    )
    assert response.status_code == 400
    page = response.content.decode()
    summary = page.index('id="error-summary"')
    assert summary < page.index('data-testid="global-state"')
    assert '<a href="#id_halt-reason">Reason: This field is required.</a>' in page
    assert '<a href="#id_halt-confirm">' in page


def test_a_resume_request_for_a_scope_that_is_not_restricted_is_refused(db, supervisor, two_person_resume):
    data = {
        "resume-scope_0": "strategy",
        "resume-scope_1": "momentum",
        "resume-state": "ACTIVE",
        "resume-reason": "x",
    }
    response = client_for(supervisor).post("/console/resume", data, follow=True)
    text = [str(m) for m in response.context["messages"]]
    assert text == ["Nothing changed: strategy:momentum is already ACTIVE: there is nothing to resume."]
    assert not ResumeRequest.objects.exists()


def test_the_message_tells_what_changed_apart_from_what_still_restricts(db, operator):
    service.halt("global", reason="exchange outage", actor=service.Actor.of(operator))
    data = {
        "halt-scope_0": "strategy",
        "halt-scope_1": "momentum",
        "halt-state": "REDUCING",
        "halt-reason": "drawdown",
    }
    response = client_for(operator).post("/console/halt", data, follow=True)
    text = [str(m) for m in response.context["messages"]]
    assert text == [
        "strategy:momentum: ACTIVE → REDUCING. Still restricted: global is HALTED (why: exchange outage), "
        "so the gate answers 423 trading_halted for strategy:momentum whatever its own state, until global "
        "is resumed."
    ]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"halt-reason": "  "}, "This field is required."),
        ({"halt-scope_0": "symbol", "halt-scope_1": "not a ticker"}, "is not a scope"),
        ({"halt-scope_0": "strategy", "halt-scope_1": ""}, "Give the strategy name"),
        ({"halt-scope_0": "planet"}, "Select a valid choice"),
        ({"halt-state": "ACTIVE"}, "Select a valid choice"),
        ({"halt-scope_0": "symbol", "halt-scope_1": "AAPL", "halt-cancel_orders": "on"}, "account-wide"),
    ],
)
def test_bad_input_is_a_form_error_and_writes_nothing(db, operator, overrides, error):
    response = client_for(operator).post("/console/halt", {**HALT_GLOBAL, **overrides})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not TradingEvent.objects.exists()


def test_a_refused_transition_is_a_message_not_an_error_page(db, operator):
    client = client_for(operator)
    client.post("/console/halt", HALT_GLOBAL)
    response = client.post("/console/halt", {**HALT_GLOBAL, "halt-state": "REDUCING"}, follow=True)
    assert response.status_code == 200
    assert "Nothing changed: global is HALTED; going to REDUCING loosens it" in response.content.decode()
    assert TradingEvent.objects.count() == 1


def test_under_the_two_person_rule_a_resume_is_a_request_approved_by_another_supervisor(
    db, supervisor, supervisor2, two_person_resume
):
    service.halt("global", reason="r", actor=service.Actor.of(supervisor))
    resume = {
        "resume-scope_0": "global",
        "resume-state": "ACTIVE",
        "resume-reason": "feed back",
        "resume-confirm": "RESUME",
    }
    response = client_for(supervisor).post("/console/resume", resume, follow=True)
    made = ResumeRequest.objects.get()
    assert f"resume request #{made.pk} to ACTIVE made" in response.content.decode()
    assert global_state() == State.HALTED
    # The requester sees the approve button disabled, and a forged approval is refused.
    assert "a different supervisor must approve it" in response.content.decode()
    assert client_for(supervisor).post(f"/console/requests/{made.pk}/approve").status_code == 403
    assert global_state() == State.HALTED
    response = client_for(supervisor2).post(f"/console/requests/{made.pk}/approve", follow=True)
    assert global_state() == State.ACTIVE
    assert f"Request #{made.pk} approved: global is now ACTIVE" in response.content.decode()
    event = TradingEvent.objects.first()
    assert (event.actor, event.approver, event.origin) == ("sam-supervisor", "sue-supervisor", "web")


def test_with_one_person_resume_a_supervisor_resumes_directly(db, supervisor, one_person_resume):
    service.halt("global", reason="r", actor=service.Actor.of(supervisor))
    resume = {
        "resume-scope_0": "global",
        "resume-state": "ACTIVE",
        "resume-reason": "feed back",
        "resume-confirm": "RESUME",
    }
    response = client_for(supervisor).post("/console/resume", resume, follow=True)
    assert global_state() == State.ACTIVE
    assert "global: HALTED → ACTIVE." in response.content.decode()


def test_approving_an_unknown_request_is_a_message(db, supervisor):
    response = client_for(supervisor).post("/console/requests/999/approve", follow=True)
    assert "There is no resume request 999" in response.content.decode()


# --- bounded reads ------------------------------------------------------------------------


def bulk_trades(n: int, at, first: int = 0) -> None:
    Trade.objects.bulk_create(
        Trade(
            client_order_id=f"bulk-{first + i}",
            symbol="AAPL",
            side="buy",
            quantity=1,
            price=100,
            executed_at=at - timedelta(seconds=i),
        )
        for i in range(n)
    )


def fill(n: int, requester, first: int = 0) -> None:
    now = timezone.now()
    bulk_trades(n, now, first=first)
    Analysis.objects.bulk_create(
        Analysis(symbol="MSFT", signal="hold", confidence=Decimal("0.5"), model_version="m", analyzed_at=now)
        for _ in range(n)
    )
    TradingEvent.objects.bulk_create(
        TradingEvent(
            scope="symbol:AAPL",
            from_state="ACTIVE",
            to_state="HALTED",
            reason="r",
            actor="a",
            source="manual",
        )
        for _ in range(n)
    )
    # Pending requests show who asked: more of them must not mean more queries.
    ResumeRequest.objects.bulk_create(
        ResumeRequest(
            scope="global",
            from_state="HALTED",
            to_state="ACTIVE",
            reason="r",
            requested_by=requester,
            expires_at=now + timedelta(minutes=5),
        )
        for _ in range(min(n, 30))
    )


def console_queries(client: Client) -> list[dict]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/").status_code == 200
    return captured.captured_queries


def test_the_console_runs_the_same_queries_at_10_and_10000_trades_and_events(db, supervisor):
    client = client_for(supervisor)
    fill(10, supervisor)
    small = console_queries(client)
    fill(9_990, supervisor, first=10)
    large = console_queries(client)
    assert len(small) == len(large)
    assert unbounded_counts(large) == []
    assert str(client.get("/").context["overview"].trades_24h) == "10,000"


# --- Grafana panels and the Content-Security-Policy ------------------------------------------------


def csp(response) -> dict[str, str]:
    parts = (part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    return {name: value for name, value in parts}


def test_the_iframes_are_the_dashboards_panels_and_only_grafana_may_be_framed(db, viewer, settings):
    settings.GRAFANA_URL = "https://grafana.example.com:3000/sub/"
    dashboard = json.loads(
        (settings.BASE_DIR / "monitoring/grafana/dashboards/investiq-overview.json").read_text()
    )
    response = client_for(viewer).get("/")
    sources = re.findall(r'<iframe src="([^"]+)"', response.content.decode())
    assert len(sources) == len(dashboard["panels"]) == 12
    ids = set()
    for source in sources:
        url = urlsplit(source.replace("&amp;", "&"))
        assert (url.scheme, url.netloc) == ("https", "grafana.example.com:3000")
        assert url.path == f"/sub/d-solo/{dashboard['uid']}/investiq-overview"
        ids.add(int(parse_qs(url.query)["panelId"][0]))
    assert ids == {panel["id"] for panel in dashboard["panels"]}
    policy = csp(response)
    assert policy["frame-src"] == "https://grafana.example.com:3000"
    assert policy["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"


def test_without_grafana_url_the_page_says_how_to_enable_the_panels(db, viewer, settings):
    settings.GRAFANA_URL = ""
    response = client_for(viewer).get("/")
    assert "<iframe" not in response.content.decode()
    assert "Set GRAFANA_URL" in response.content.decode()
    assert csp(response)["frame-src"] == "'none'"


def test_a_grafana_url_that_could_widen_the_policy_is_not_used(db, viewer, settings):
    settings.GRAFANA_URL = "http://grafana; script-src *"
    response = client_for(viewer).get("/")
    assert csp(response)["frame-src"] == "'none'"
    assert "script-src *" not in response["Content-Security-Policy"]


def test_a_renumbered_panel_moves_the_console_with_it(tmp_path, settings):
    dashboard = json.loads(
        (settings.BASE_DIR / "monitoring/grafana/dashboards/investiq-overview.json").read_text()
    )
    dashboard["panels"] = [{**dashboard["panels"][0], "id": 99}]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard))
    panels = grafana.embedded_panels("http://g:3000", grafana.load_dashboard(path))
    assert [p.url.endswith("panelId=99") for p in panels] == [True]


def test_a_missing_dashboard_is_said_on_the_page(db, viewer, settings, tmp_path):
    settings.GRAFANA_URL = "http://127.0.0.1:3000"
    settings.MONITORING_DIR = tmp_path
    response = client_for(viewer).get("/")
    assert response.status_code == 200
    assert "cannot read the dashboard" in response.content.decode()


def test_our_pages_other_than_the_console_stay_unframeable(db, viewer):
    assert client_for(viewer).get("/admin/login/")["X-Frame-Options"] == "DENY"
    assert settings.X_FRAME_OPTIONS == "DENY"


@pytest.mark.parametrize("path", ["/", "/console/live", "/admin/"])
def test_a_database_outage_answers_503_with_what_it_means_for_trading_not_500(transactional_db, path):
    from ops.tests.conftest import unreachable_database

    client = Client(raise_request_exception=False)
    client.force_login(make_user("olga-operator", "ops_operator"))
    with unreachable_database():
        response = client.get(path)
    assert response.status_code == 503
    page = response.content.decode()
    assert "Database unavailable" in page and "refuses every new trade" in page


def test_a_bug_still_answers_500_not_a_database_outage(db, settings):
    settings.ROOT_URLCONF = "ops.tests.urls_for_errors"
    response = Client(raise_request_exception=False).get("/explode/1")
    assert response.status_code == 500
    assert "Database unavailable" not in response.content.decode()


def test_a_busy_database_answers_503_without_claiming_an_outage(transactional_db, settings):
    """A statement timeout or a lock wait is not a lost database: the page must not tell
    on-call that the gate refuses every trade."""
    import sqlite3

    from django.db import connection

    settings.ROOT_URLCONF = "ops.tests.urls_for_errors"
    holder = None
    if connection.vendor == "sqlite":
        holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # holds the write lock
    try:
        response = Client(raise_request_exception=False).get("/slow")
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        connection.close()  # drop the shortened busy timeout with the connection
    assert response.status_code == 503
    page = response.content.decode()
    assert "Database busy" in page and "refuses every new trade" not in page


def test_grafana_behind_the_proxy_is_framed_from_the_consoles_own_origin(db, viewer, settings):
    settings.GRAFANA_URL = "/grafana/"
    response = client_for(viewer).get("/")
    sources = re.findall(r'<iframe src="([^"]+)"', response.content.decode())
    assert len(sources) == 12
    assert all(
        source.startswith("/grafana/d-solo/investiq-overview/investiq-overview?") for source in sources
    )
    assert csp(response)["frame-src"] == "'self'"


@pytest.mark.parametrize(
    "url", ["//evil.example/grafana", "/grafana; script-src *", "/grafana 'unsafe-inline'"]
)
def test_a_path_that_is_not_plainly_a_path_is_not_used(db, viewer, settings, url):
    settings.GRAFANA_URL = url
    response = client_for(viewer).get("/")
    assert csp(response)["frame-src"] == "'none'"
    assert "<iframe" not in response.content.decode()


# --- The TLS proxy's check in front of /grafana/ (monitoring/Caddyfile's forward_auth) ----


def test_grafana_auth_names_every_ops_role_to_grafana(db, viewer, operator, supervisor):
    for user in (viewer, operator, supervisor):
        response = client_for(user).get("/console/grafana-auth")
        assert response.status_code == 200
        assert response["X-WEBAUTH-USER"] == f"console-{user.get_username()}"
        assert "no-cache" in response["Cache-Control"]


def test_grafana_auth_refuses_anonymous_and_people_without_a_role(db):
    response = Client().get("/console/grafana-auth")
    assert response.status_code == 401 and "X-WEBAUTH-USER" not in response
    for user in (make_user("no-role"), make_user("not-staff", "ops_viewer", staff=False)):
        response = client_for(user).get("/console/grafana-auth")
        assert response.status_code == 403 and "X-WEBAUTH-USER" not in response


def test_grafana_auth_takes_only_get(db, viewer):
    assert client_for(viewer).post("/console/grafana-auth").status_code == 405


@pytest.mark.parametrize(
    ("age", "state", "words"),
    [
        (None, "not_connected", "Monitoring: not connected"),
        (10, "connected", "Monitoring: connected, last heartbeat 10 s ago"),
        (301, "silent", "MONITORING SILENT"),
    ],
)
def test_the_monitoring_chain_is_shown_above_the_state(db, viewer, age, state, words):
    from ops.alerts.models import Heartbeat

    if age is not None:
        Heartbeat.objects.create(last_received_at=timezone.now() - timedelta(seconds=age))
    for path in ("/", "/console/live"):
        page = client_for(viewer).get(path).content.decode()
        assert f'data-chain-state="{state}"' in page and words in page
        # At the top: before the global state, in the live part that refreshes.
        assert page.index('data-testid="monitoring-chain"') < page.index('data-testid="global-state"')
    assert ("MONITORING SILENT" in page) == (state == "silent")


def test_tiles_put_down_first_with_down_since_seconds_and_not_configured_apart(db, viewer):
    now = timezone.now()
    for name, status, latency, detail, checked_at in (
        ("alpaca", "up", 5004.0, "account reachable", now),
        ("database", "up", 1.2, "sqlite answers", now - timedelta(hours=1)),
        ("ml_service", "not_configured", 0.0, "ML_SERVICE_URL is not set", now),
        ("polygon", "down", 5003.0, "read timeout", now),
    ):
        DependencyStatus.objects.create(
            name=name,
            status=status,
            latency_ms=latency,
            detail=detail,
            checked_at=checked_at,
            status_since=now - timedelta(minutes=3),
        )
    page = client_for(viewer).get("/").content.decode()
    order = [
        page.index(f'data-testid="dep-{name}"') for name in ("polygon", "database", "ml_service", "alpaca")
    ]
    assert order == sorted(order)  # DOWN, UNKNOWN, NOT CONFIGURED, UP
    polygon = page[order[0] : order[1]]
    assert "down since" in polygon and "5.0 s" in polygon and "Last error: read timeout" in polygon
    database = page[order[1] : order[2]]
    # A healthy result too old to trust is UNKNOWN, and never called an error.
    assert "Last error" not in database and "Last check (up): sqlite answers" in database
    not_configured = page[order[2] : order[3]]
    assert "○" in not_configured and " ms" not in not_configured and "?" not in not_configured
    assert "5.0 s" in page[order[3] :]
