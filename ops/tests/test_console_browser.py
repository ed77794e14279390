"""The console in a real browser (Debian's Chromium through Playwright) against a live server.

These are the issue's "done when" scenarios: halting from the page and the gate refusing,
a viewer's disabled controls and a forged POST, a supervisor's resume, the two-person
resume in two browser sessions, and a CLI halt appearing on an open page without a reload.
"""

from __future__ import annotations

import os
import re

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from django.core.management import call_command
from playwright.sync_api import Browser, BrowserContext, Page, expect

from conftest import require_service
from ops.models import ApiClient
from ops.tests.browser import chromium_available, launch_args
from ops.tests.conftest import make_user, trade_payload
from ops.trading import service
from ops.trading.models import ResumeRequest, State, TradingEvent, TradingState

PASSWORD = "correct horse battery"  # make_user's
# The live refresh runs every 5 s; 10 s is the issue's promise for a change made elsewhere.
LIVE_WAIT_MS = 10_000


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    require_service(chromium_available(), "/usr/bin/chromium is missing (make test-tools installs it)")
    return {**browser_type_launch_args, **launch_args()}


@pytest.fixture(scope="module", autouse=True)
def allow_sync_orm_beside_playwright():
    """Playwright's sync API runs an event loop in this thread; the tests' own ORM calls
    (fixtures, assertions, the database flush after each test) are still plain
    synchronous code, which Django refuses next to a running loop. For this module only:
    left set, it would leak into later tests' subprocesses (`check --deploy` rejects it)."""
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if saved is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


def log_in(page: Page, live_server, username: str) -> Page:
    page.goto(f"{live_server.url}/")
    # Not logged in: the console sends us to the login page, and back after it.
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("global-state")).to_be_visible()
    # The console's markup is visible before its stylesheet has loaded; anything that
    # measures the layout needs the load event (without it a loaded machine measured the
    # unstyled page: 381 px wide at 375).
    page.wait_for_load_state("load")
    return page


def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = browser.new_context()
    return context, context.new_page()


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two opaque CSS rgb() colours."""

    def luminance(colour: str) -> float:
        channels = [int(part) / 255 for part in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def global_state() -> str:
    return TradingState.objects.get(scope="global").state


def halt_globally(page: Page, reason: str) -> None:
    page.get_by_label("Scope kind").first.select_option("global")
    page.get_by_label("New state").first.select_option("HALTED")
    page.get_by_label("Reason").first.fill(reason)
    page.get_by_label("Type HALT to confirm a change to global").fill("HALT")
    # Submitted from the keyboard: the controls must not need a mouse.
    page.get_by_role("button", name="HALT global").focus()
    page.keyboard.press("Enter")


def test_an_operator_halts_with_a_reason_and_the_gate_answers_423(page: Page, live_server):
    make_user("otto", "ops_operator")
    _, token = ApiClient.issue("engine")
    log_in(page, live_server, "otto")
    expect(page.get_by_test_id("global-state")).to_contain_text("ACTIVE")

    halt_globally(page, "Alpaca fills look wrong")

    expect(page.get_by_test_id("global-state")).to_contain_text("HALTED")
    expect(page.get_by_role("status", name="What happened")).to_contain_text(
        "global: ACTIVE → HALTED. The pre-trade gate now refuses new trades (423 trading_halted)."
    )
    expect(page.locator(".state-reason")).to_contain_text("Alpaca fills look wrong")
    response = requests.post(
        f"{live_server.url}/api/v1/trades",
        json=trade_payload(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 423
    assert response.json()["error"] == "trading_halted"
    event = TradingEvent.objects.get()
    assert (event.actor, event.origin, event.reason) == ("otto", "web", "Alpaca fills look wrong")


def test_a_global_halt_without_the_typed_confirmation_changes_nothing(page: Page, live_server):
    make_user("otto", "ops_operator")
    log_in(page, live_server, "otto")
    page.get_by_label("Reason").first.fill("just testing")
    page.get_by_role("button", name="HALT global").click()
    expect(page.get_by_test_id("error-summary")).to_contain_text(
        "Changing global to HALTED restricts every trade: type HALT to confirm."
    )
    expect(page.get_by_test_id("global-state")).to_contain_text("ACTIVE")
    assert global_state() == State.ACTIVE


def test_a_viewer_sees_disabled_controls_and_a_forged_post_gets_403(page: Page, live_server):
    make_user("vera", "ops_viewer")
    log_in(page, live_server, "vera")
    expect(page.get_by_role("button", name="HALT global")).to_be_disabled()
    expect(page.get_by_role("button", name="Request resume of global")).to_be_disabled()
    expect(page.get_by_text("Disabled: halting needs the operator or supervisor role")).to_be_visible()
    # Disabled looks disabled (grey, not the live red) and its words still read: >= 4.5:1.
    for control in ("#halt-controls [data-effect]", "#halt-controls textarea", "#resume-controls select"):
        colours = page.locator(control).first.evaluate(
            "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
        )
        assert colours[1] != "rgb(176, 0, 32)", control
        assert contrast(*colours) >= 4.5, (control, colours)

    # The same POST the form would make, with the viewer's session and a valid CSRF token.
    csrf = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    forged = page.request.post(
        f"{live_server.url}/console/halt",
        form={
            "csrfmiddlewaretoken": csrf,
            "halt-scope_0": "global",
            "halt-state": "HALTED",
            "halt-reason": "forged",
            "halt-confirm": "HALT",
        },
        headers={"Referer": f"{live_server.url}/", "Origin": live_server.url},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "needs the operator or supervisor role" in forged.text()
    assert global_state() == State.ACTIVE
    assert not TradingEvent.objects.exists()


def test_a_supervisor_resumes_when_one_person_may(page: Page, live_server, one_person_resume):
    make_user("sam", "ops_supervisor")
    call_command("trading", "halt", "--reason", "maintenance", "--actor", "sam")
    log_in(page, live_server, "sam")
    expect(page.get_by_test_id("global-state")).to_contain_text("HALTED")
    page.get_by_label("Reason").nth(1).fill("maintenance done")
    page.get_by_label("Type RESUME to confirm a change to global").fill("RESUME")
    page.get_by_role("button", name="Resume global", exact=True).click()
    expect(page.get_by_test_id("global-state")).to_contain_text("ACTIVE")
    expect(page.get_by_role("status", name="What happened")).to_contain_text("global: HALTED → ACTIVE.")
    assert global_state() == State.ACTIVE


def test_the_two_person_resume_end_to_end_in_two_browser_sessions(
    browser: Browser, live_server, two_person_resume
):
    make_user("bob", "ops_supervisor")
    make_user("carol", "ops_supervisor")
    call_command("trading", "halt", "--reason", "broker outage", "--actor", "bob")
    bob_context, bob = new_page(browser)
    carol_context, carol = new_page(browser)
    try:
        log_in(bob, live_server, "bob")
        log_in(carol, live_server, "carol")

        bob.get_by_label("Reason").nth(1).fill("broker is back")
        bob.get_by_label("Type RESUME to confirm a change to global").fill("RESUME")
        bob.get_by_role("button", name="Request resume of global").click()
        expect(bob.get_by_role("status", name="What happened")).to_contain_text("resume request #")
        expect(bob.get_by_test_id("global-state")).to_contain_text("HALTED")
        request = ResumeRequest.objects.get()
        # The requester may not approve his own request: the button says why.
        expect(bob.locator(f"#approve-{request.pk}")).to_be_disabled()
        expect(
            bob.get_by_text("You made this request: a different supervisor must approve it.")
        ).to_be_visible()

        # Carol's open page shows the request by itself (live refresh) and she approves it.
        approve = carol.get_by_role("button", name=f"Approve request #{request.pk}")
        expect(approve).to_be_visible(timeout=LIVE_WAIT_MS)
        expect(carol.get_by_test_id(f"request-{request.pk}")).to_contain_text("expires")
        approve.click()
        expect(carol.get_by_role("status", name="What happened")).to_contain_text(
            f"Request #{request.pk} approved: global is now ACTIVE"
        )
        expect(carol.get_by_test_id("global-state")).to_contain_text("ACTIVE")
        # And Bob's page follows without a reload.
        expect(bob.get_by_test_id("global-state")).to_contain_text("ACTIVE", timeout=LIVE_WAIT_MS)
    finally:
        bob_context.close()
        carol_context.close()
    event = TradingEvent.objects.first()
    assert (event.to_state, event.actor, event.approver) == (State.ACTIVE, "bob", "carol")


def test_a_halt_from_the_cli_shows_on_an_open_page_without_a_reload(page: Page, live_server):
    make_user("vera", "ops_viewer")
    make_user("otto", "ops_operator")
    log_in(page, live_server, "vera")
    expect(page.get_by_test_id("global-state")).to_contain_text("ACTIVE")
    # A marker that a reload would wipe.
    page.evaluate("window.__notReloaded = true")

    call_command("trading", "halt", "--reason", "exchange halt on NYSE", "--actor", "otto")

    expect(page.get_by_test_id("global-state")).to_contain_text("HALTED", timeout=LIVE_WAIT_MS)
    expect(page.locator(".state-reason")).to_contain_text("exchange halt on NYSE")
    assert page.evaluate("window.__notReloaded") is True


def test_the_page_fits_a_phone_and_every_form_works_without_javascript(browser: Browser, live_server):
    make_user("otto", "ops_operator")
    context = browser.new_context(viewport={"width": 375, "height": 800}, java_script_enabled=False)
    try:
        page = log_in(context.new_page(), live_server, "otto")
        styled = page.evaluate(
            """() => [...document.styleSheets].some(sheet => {
                // A sheet whose request failed throws on cssRules (seen in Chromium).
                try { return sheet.href.endsWith('/console.css') && sheet.cssRules.length > 0; }
                catch { return false; }
            })"""
        )
        # Unstyled, the page is 381 px wide: the measurement must be of the styled page.
        assert styled, "the console's stylesheet is not applied"
        wide = page.evaluate(
            "() => [...document.querySelectorAll('*')]"
            ".filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth - 1)"
            ".map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)"
        )
        width = page.locator("html").evaluate("html => [html.scrollWidth, html.clientWidth]")
        assert width[0] <= width[1], f"horizontal scroll at 375 px: {width} {wide}"
        page.get_by_label("Scope kind").first.select_option("symbol")
        page.get_by_label("Strategy name or symbol").first.fill("TSLA")
        page.get_by_label("Reason").first.fill("halted at the exchange")
        page.get_by_role("button", name="Apply").click()
        expect(page.get_by_test_id("scope-symbol:TSLA")).to_contain_text("HALTED")
    finally:
        context.close()


# --- issue 18: the console at 3 a.m., at both widths ----------------------------------

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 375, "height": 812}
WIDTHS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
# The page's promise is STALE after 15 s without fresh data; a refresh is tried every 5 s
# and the banner re-checked every second, so it shows by 15 s + 1 s after the last good
# answer. The bound leaves room for a loaded machine.
STALE_WAIT_MS = 25_000


def sized_page(browser: Browser, live_server, username: str, viewport: dict) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport=viewport)
    return context, log_in(context.new_page(), live_server, username)


def busy_history(operator) -> None:
    """20 timeline events and 3 restricted scopes: the page at its longest."""
    actor = service.Actor.of(operator)
    for n in range(17):
        service.halt(f"symbol:X{chr(65 + n)}", reason=f"history {n}", actor=actor, to_state=State.REDUCING)
    for n in range(3):
        service.halt(f"strategy:s{n}", reason=f"restricted {n}", actor=actor)
    TradingState.objects.filter(scope__startswith="symbol:X").update(state=State.ACTIVE)
    assert TradingEvent.objects.count() == 20
    assert TradingState.objects.exclude(state=State.ACTIVE).count() == 3


def box(locator) -> dict:
    return locator.evaluate(
        "e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom}; }"
    )


def assert_no_horizontal_scroll(page: Page) -> None:
    width = page.locator("html").evaluate("html => [html.scrollWidth, html.clientWidth]")
    assert width[0] <= width[1], f"horizontal scroll: {width}"


@WIDTHS
def test_the_top_says_stale_when_the_server_stops_answering(browser: Browser, live_server, viewport):
    make_user("vera", "ops_viewer")
    context, page = sized_page(browser, live_server, "vera", viewport)
    try:
        read_at = page.get_by_test_id("read-at").inner_text()
        # The server gone, as the browser sees it: every refresh fails to connect (the
        # test server is shared by the session, so it is cut off here, not stopped).
        page.route("**/console/live", lambda route: route.abort("connectionrefused"))
        note = page.get_by_test_id("stale-note")
        expect(note).to_contain_text("STALE: last updated", timeout=STALE_WAIT_MS)
        # The server's own time of the last good read, never the browser's clock.
        assert read_at.split()[2] in note.inner_text()
        expect(page.locator(".state")).to_have_class(re.compile(r"\bis-stale\b"))
        assert page.title().startswith("STALE")
        assert box(note)["bottom"] <= viewport["height"]  # at the top, in the first screen

        page.unroute("**/console/live")
        expect(note).to_be_hidden(timeout=LIVE_WAIT_MS)
        assert not page.title().startswith("STALE")
    finally:
        context.close()


def test_a_lost_session_says_logged_out_with_a_link_to_log_in(page: Page, live_server):
    make_user("vera", "ops_viewer")
    log_in(page, live_server, "vera")
    page.context.clear_cookies()
    note = page.get_by_test_id("stale-note")
    expect(note).to_contain_text("logged out", timeout=LIVE_WAIT_MS)
    assert page.title().startswith("STALE")
    note.get_by_role("link").click()
    expect(page.get_by_label("Username")).to_be_visible()


@WIDTHS
def test_the_controls_are_beside_the_state_with_a_long_history(browser: Browser, live_server, viewport):
    supervisor = make_user("sam", "ops_supervisor")
    busy_history(supervisor)
    context, page = sized_page(browser, live_server, "sam", viewport)
    try:
        expect(page.locator(".timeline .event")).to_have_count(20)
        halt_button = box(page.locator("#halt-controls [data-effect]"))
        resume_button = box(page.locator("#resume-controls [data-effect]"))
        state = box(page.locator(".state"))
        if viewport is DESKTOP:
            # Both controls in the first screen, without scrolling.
            assert (
                halt_button["bottom"] <= viewport["height"] and resume_button["bottom"] <= viewport["height"]
            )
        else:
            # Right after the state: the halt control within one screen below it.
            assert halt_button["bottom"] <= state["bottom"] + viewport["height"]
            assert box(page.locator("#controls"))["top"] < box(page.locator(".timeline"))["top"]
        assert_no_horizontal_scroll(page)
    finally:
        context.close()


@WIDTHS
def test_a_global_scope_with_a_name_is_refused_and_nothing_changes(browser: Browser, live_server, viewport):
    make_user("otto", "ops_operator")
    context, page = sized_page(browser, live_server, "otto", viewport)
    try:
        name = page.get_by_label("Strategy name or symbol").first
        expect(name).to_be_disabled()  # Global takes no name
        page.get_by_label("Scope kind").first.select_option("symbol")
        name.fill("tsla")
        page.get_by_label("New state").first.select_option("REDUCING")
        expect(page.locator("#halt-controls [data-effect]")).to_have_text("Set symbol:TSLA to REDUCING")
        # The page would not send this (the box is disabled for Global); the server is
        # asked anyway, as a page without the script or a stale form would.
        page.get_by_label("Scope kind").first.select_option("global")
        expect(page.locator("#halt-controls [data-effect]")).to_have_text("Set global to REDUCING")
        page.get_by_label("Reason").first.fill("TSLA halted at the exchange")
        page.get_by_label("Type HALT to confirm a change to global").fill("HALT")
        expect(name).to_be_disabled()
        # Enabled and submitted in one step: any change event would disable it again.
        name.evaluate("input => { input.disabled = false; input.form.requestSubmit(); }")
        expect(page.get_by_test_id("error-summary")).to_contain_text(
            "Global covers everything and takes no name"
        )
        assert global_state() == State.ACTIVE
        assert not TradingEvent.objects.exists()
    finally:
        context.close()


@WIDTHS
def test_a_global_reduce_without_the_confirmation_is_refused_with_the_summary_focused(
    browser: Browser, live_server, viewport
):
    make_user("otto", "ops_operator")
    context, page = sized_page(browser, live_server, "otto", viewport)
    try:
        page.get_by_label("New state").first.select_option("REDUCING")
        page.get_by_label("Reason").first.fill("feed frozen")
        page.get_by_role("button", name="Set global to REDUCING").click()
        summary = page.get_by_test_id("error-summary")
        expect(summary).to_contain_text("type HALT to confirm")
        expect(summary).to_be_focused()
        expect(summary).to_be_in_viewport()
        # Its link leads to the field to fix.
        summary.get_by_role("link", name=re.compile("type HALT")).click()
        expect(page.get_by_label("Type HALT to confirm a change to global")).to_be_in_viewport()
        assert global_state() == State.ACTIVE and not TradingEvent.objects.exists()
    finally:
        context.close()


@WIDTHS
def test_a_refresh_that_grows_the_state_does_not_move_the_field_being_typed_in(
    browser: Browser, live_server, viewport
):
    operator = make_user("otto", "ops_operator")
    context, page = sized_page(browser, live_server, "otto", viewport)
    try:
        reason = page.get_by_label("Reason").first
        reason.fill("typing while the state changes")
        before = box(reason)["top"]
        # Elsewhere: global halted with a long reason, so the state part grows by lines.
        service.halt(
            "global",
            reason="exchange outage; " * 20,
            actor=service.Actor.of(operator),
            to_state=State.REDUCING,
        )
        expect(page.get_by_test_id("global-state")).to_contain_text("REDUCING", timeout=LIVE_WAIT_MS)
        expect(reason).to_be_focused()
        assert abs(box(reason)["top"] - before) <= 2
        assert reason.input_value() == "typing while the state changes"
    finally:
        context.close()


@WIDTHS
@pytest.mark.parametrize("where", ["console", "login", "admin trade list"])
def test_axe_finds_no_serious_or_critical_violation(browser: Browser, live_server, viewport, where):
    make_user("root", "ops_supervisor", superuser=True)
    context = browser.new_context(viewport=viewport)
    try:
        page = context.new_page()
        if where == "login":
            page.goto(f"{live_server.url}/admin/login/")
        else:
            log_in(page, live_server, "root")
            if where == "admin trade list":
                page.goto(f"{live_server.url}/admin/ops/trade/")
        page.wait_for_load_state("load")
        violations = Axe().run(page).response["violations"]
        serious = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not serious, "\n".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
            for v in serious
        )
    finally:
        context.close()


@pytest.fixture
def drill_in_the_request(settings):
    """The console queues the drill for the worker; here it runs in the request (eager)."""
    from investiq.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_a_supervisor_runs_a_kill_switch_drill_from_the_console(
    page: Page, live_server, drill_in_the_request
):
    from ops.drill.models import DrillRun

    make_user("bob", "ops_supervisor")
    log_in(page, live_server, "bob")
    drill = page.get_by_test_id("drill")
    expect(drill.get_by_test_id("last-drill")).to_have_text("No kill-switch drill has run yet.")
    drill.get_by_role("button", name="Run kill-switch drill").click()

    expect(page.get_by_role("status", name="What happened")).to_contain_text("Kill-switch drill started")
    page.reload()
    expect(page.get_by_test_id("last-drill")).to_contain_text("Last drill: passed")
    run = DrillRun.objects.get()
    assert (run.outcome, run.started_by, run.origin) == ("passed", "bob", "web")
    assert global_state() == State.ACTIVE
    assert TradingState.objects.get(scope="strategy:__drill__").state == State.ACTIVE


def test_a_viewer_has_no_drill_button_and_a_forged_drill_post_gets_403(page: Page, live_server):
    from ops.drill.models import DrillRun

    make_user("vera", "ops_viewer")
    log_in(page, live_server, "vera")
    drill = page.get_by_test_id("drill")
    expect(drill.get_by_role("button", name="Run kill-switch drill")).to_have_count(0)
    expect(drill.get_by_text("Running a drill needs the supervisor role.")).to_be_visible()

    csrf = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    forged = page.request.post(
        f"{live_server.url}/console/drill",
        form={"csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{live_server.url}/", "Origin": live_server.url},
        max_redirects=0,
    )
    assert forged.status == 403
    assert not DrillRun.objects.exists()
