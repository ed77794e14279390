"""Screenshots of the ops console for the README, taken from a real browser run.

    .venv/bin/python docs/make_screenshots.py

Builds a throwaway embedded-default deployment (SQLite in a temporary folder, the demo
data of `make run`), serves it on a free 127.0.0.1 port, and drives Debian's Chromium
(/usr/bin/chromium) through Playwright: the console ACTIVE, then HALTED by an operator
from the page, then a phone-width (375 px) view with a two-person resume request waiting
for a second supervisor. Writes docs/console-active.png, docs/console-halted.png and
docs/console-phone.png. Nothing outside the temporary folder is touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Throwaway logins of a throwaway database, still never a fixed string.
PASSWORD = secrets.token_urlsafe(16)


def configure(var_dir: str) -> None:
    sys.path.insert(0, str(ROOT))
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "GRAFANA_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="investiq.settings",
        INVESTIQ_VAR_DIR=var_dir,
        DEBUG="true",
        # Playwright's sync API runs an event loop in this thread; our ORM calls are sync.
        DJANGO_ALLOW_ASYNC_UNSAFE="true",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()


def main() -> None:
    var_dir = tempfile.mkdtemp(prefix="investiq-screenshots-")
    try:
        configure(var_dir)
        run()
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def run() -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.management import call_command
    from django.test.testcases import LiveServerThread
    from playwright.sync_api import expect, sync_playwright

    from ops.demo import seed
    from ops.tests.browser import chromium_available, launch_args

    if not chromium_available():
        sys.exit("needs /usr/bin/chromium (apt-get install --no-install-recommends chromium)")
    call_command("migrate", verbosity=0)
    seed()
    for user in get_user_model().objects.all():
        user.set_password(PASSWORD)
        user.save()
    server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    url = f"http://127.0.0.1:{server.port}"

    def log_in(page, username: str) -> None:
        page.goto(f"{url}/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_test_id("global-state")).to_be_visible()

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(**launch_args())
            desktop = browser.new_context(viewport={"width": 1366, "height": 900})
            page = desktop.new_page()
            log_in(page, "alice")
            page.screenshot(path=DOCS / "console-active.png", full_page=True)

            page.get_by_label("Reason").first.fill("Alpaca fills do not match our orders; investigating")
            page.get_by_label("Type HALT to confirm a change to global").fill("HALT")
            page.get_by_role("button", name="HALT global").click()
            expect(page.get_by_test_id("global-state")).to_contain_text("HALTED")
            page.screenshot(path=DOCS / "console-halted.png", full_page=True)
            desktop.close()

            bob = browser.new_context().new_page()
            log_in(bob, "bob")
            bob.get_by_label("Reason").nth(1).fill("Fills reconciled with Alpaca support")
            bob.get_by_label("Type RESUME to confirm a change to global").fill("RESUME")
            bob.get_by_role("button", name="Request resume of global").click()
            expect(bob.get_by_role("status", name="What happened")).to_contain_text("resume request #")

            phone = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2)
            page = phone.new_page()
            log_in(page, "carol")
            # The first screen is what on-call sees at 3 a.m.: state, scopes, what is down.
            page.screenshot(path=DOCS / "console-phone.png")
            browser.close()
    finally:
        server.terminate()
    for name in ("console-active.png", "console-halted.png", "console-phone.png"):
        print(DOCS / name)


if __name__ == "__main__":
    main()
