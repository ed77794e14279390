"""Silencing an alert from the console in a real browser (Chromium), at a desktop's and
a phone's width, against a real Alertmanager: the silence appears there with the
person's name and reason, in the console's list and its audit trail, and expires."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from ops.alerts.models import SilenceEvent
from ops.tests.conftest import make_user
from ops.tests.test_console_browser import (  # noqa: F401 - fixtures, used by name
    allow_sync_orm_beside_playwright,
    browser_type_launch_args,
    log_in,
)
from ops.tests.test_silences import (  # noqa: F401 - the alertmanager fixture, used by name
    alertmanager,
    am,
    firing_alert,
    post_alert_to,
    silences_in,
)


@pytest.mark.parametrize("width, height", [(1366, 900), (375, 812)], ids=["desktop", "phone"])
def test_an_operator_silences_an_alert_and_expires_it_from_the_page(
    browser: Browser,
    live_server,
    am,  # noqa: F811 - the fixture imported above
    width,
    height,
):
    make_user("alice", "ops_operator")
    alert = firing_alert()
    post_alert_to(am, alert.labels)
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = log_in(context.new_page(), live_server, "alice")
        expect(page.get_by_test_id("silences")).to_contain_text("None: every alert notifies.")
        page.get_by_role("link", name="Silence HighLatency…").click()
        page.get_by_label("Silence for").select_option("4h")
        page.get_by_label("Reason").fill("deploy in progress, INC-7")
        page.get_by_role("button", name="Silence HighLatency").click()

        expect(page.get_by_role("status", name="What happened")).to_contain_text("HighLatency silenced")
        [made] = silences_in(am)
        assert (made["createdBy"], made["comment"]) == ("alice", "deploy in progress, INC-7")
        listed = page.get_by_test_id(f"silence-{made['id']}")
        expect(listed).to_contain_text("by alice")
        expect(listed).to_contain_text("deploy in progress, INC-7")
        event = SilenceEvent.objects.get()
        expect(page.get_by_test_id(f"silence-event-{event.pk}")).to_contain_text("alice silenced HighLatency")
        width_now = page.locator("html").evaluate("html => [html.scrollWidth, html.clientWidth]")
        assert width_now[0] <= width_now[1], f"horizontal scroll: {width_now}"
        listed.scroll_into_view_if_needed()

        listed.get_by_role("button", name="Expire now").click()
        expect(page.get_by_role("status", name="What happened")).to_contain_text("expired")
        assert silences_in(am) == []
        assert SilenceEvent.objects.filter(action="expired", actor="alice").count() == 1
    finally:
        context.close()


def test_a_form_without_a_reason_stays_on_the_page_with_the_error_in_view(
    browser: Browser,
    live_server,
    am,  # noqa: F811 - the fixture imported above
):
    make_user("alice", "ops_operator")
    alert = firing_alert()
    context = browser.new_context(viewport={"width": 375, "height": 812})
    try:
        page = log_in(context.new_page(), live_server, "alice")
        page.goto(f"{live_server.url}/console/alerts/{alert.pk}/silence")
        page.get_by_role("button", name="Silence HighLatency").click()
        error = page.get_by_test_id("silence-error")
        expect(error).to_contain_text("A reason is required")
        expect(error).to_be_in_viewport()
        expect(error).to_be_focused()
        assert silences_in(am) == [] and not SilenceEvent.objects.exists()
    finally:
        context.close()
