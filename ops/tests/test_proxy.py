"""The TLS proxy: monitoring/Caddyfile validated and run by the real Caddy (Debian package).

The live test runs the shipped Caddyfile (only its listen ports and upstreams pointed at
local ones through the environment it reads) in front of the app and a local server
playing Grafana: the console and Grafana share one HTTPS origin, and only people logged
in to the console reach Grafana, as themselves.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from conftest import require_service
from ops.tests.browser import chromium_available, launch_args
from ops.tests.conftest import make_user
from ops.tests.monitoring_files import MONITORING, run, tool
from ops.tests.processes import free_port, log_in, stop_process
from ops.tests.test_console_browser import log_in as log_in_page
from ops.tests.test_monitoring_live import wait_for

CADDYFILE = MONITORING / "Caddyfile"
PASSWORD = "correct horse battery"  # make_user's
PANEL = "/grafana/d-solo/investiq-overview/investiq-overview"
SHOTS = Path(os.environ.get("INVESTIQ_SHOTS_DIR", "/tmp/shots-issue-17b"))  # noqa: S108 (looked at by people)


def caddy_env(tmp_path: Path, **env: str) -> dict[str, str]:
    # Caddy keeps its CA and certificates under XDG_DATA_HOME: the test's own folder.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        **env,
    }


def test_caddy_accepts_the_shipped_caddyfile(tmp_path):
    result = subprocess.run(
        [tool("caddy"), "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=caddy_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_caddy_rejects_a_broken_copy(tmp_path):
    broken = tmp_path / "Caddyfile"
    broken.write_text(CADDYFILE.read_text().replace("forward_auth", "forward_auht"))
    result = run(tool("caddy"), "validate", "--config", broken, "--adapter", "caddyfile")
    assert result.returncode != 0
    assert "forward_auht" in result.stdout + result.stderr


def test_the_caddyfile_is_in_caddys_own_format():
    result = run(tool("caddy"), "fmt", CADDYFILE)
    assert result.returncode == 0, result.stderr
    assert result.stdout == CADDYFILE.read_text()


@dataclass
class Proxy:
    https: str
    http: str


@pytest.fixture
def proxy(live_server, httpserver, settings, tmp_path, monkeypatch) -> Iterator[Proxy]:
    caddy = tool("caddy")
    settings.GRAFANA_URL = "/grafana"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Grafana, played by a local server: any page under /grafana/.
    httpserver.expect_request(re.compile(r"^/grafana/")).respond_with_data(
        "<html>panel</html>", content_type="text/html"
    )
    https_port, http_port = free_port(), free_port()
    env = caddy_env(
        tmp_path,
        PROXY_BIND="127.0.0.1",
        PROXY_HTTPS_PORT=str(https_port),
        PROXY_HTTP_PORT=str(http_port),
        PROXY_HOST="localhost",
        APP_UPSTREAM=live_server.url.removeprefix("http://"),
        GRAFANA_UPSTREAM=httpserver.url_for("/").removeprefix("http://").rstrip("/"),
    )
    log = tmp_path / "caddy.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Caddy's local CA signs the certificate: requests (and log_in) trust its root only.
        root = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        wait_for("Caddy's local CA", root.exists)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(root))
        base = f"https://localhost:{https_port}"
        wait_for("the app through the proxy", lambda: requests.get(f"{base}/healthz", timeout=5).ok)
        yield Proxy(https=base, http=f"http://localhost:{http_port}")
    except BaseException:
        print(log.read_text()[-3000:])
        raise
    finally:
        stop_process(process)


def grafana_users(httpserver) -> list[str | None]:
    return [r.headers.get("X-WEBAUTH-USER") for r, _ in httpserver.log if r.path.startswith("/grafana/")]


def test_only_people_logged_in_to_the_console_reach_grafana_as_themselves(
    proxy, httpserver, transactional_db
):
    make_user("vera", "ops_viewer")
    make_user("nora")  # staff, no ops role

    # Anonymous, even claiming to be Grafana's admin: refused before Grafana.
    for headers in ({}, {"X-WEBAUTH-USER": "admin"}):
        answer = requests.get(f"{proxy.https}{PANEL}", headers=headers, timeout=10)
        assert answer.status_code == 401
    assert grafana_users(httpserver) == []

    nora = log_in(proxy.https, "nora", PASSWORD, next_path="/admin/")
    assert nora.get(f"{proxy.https}{PANEL}", timeout=10).status_code == 403
    assert grafana_users(httpserver) == []

    vera = log_in(proxy.https, "vera", PASSWORD, next_path="/")
    answer = vera.get(f"{proxy.https}{PANEL}?panelId=7", headers={"X-WEBAUTH-USER": "admin"}, timeout=10)
    assert answer.status_code == 200 and answer.text == "<html>panel</html>"
    # Grafana hears the console's name for her, never what the browser claimed.
    assert grafana_users(httpserver) == ["console-vera"]
    assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'self'"


def test_the_console_frames_grafana_from_its_own_https_origin(proxy, transactional_db):
    make_user("vera", "ops_viewer")
    vera = log_in(proxy.https, "vera", PASSWORD, next_path="/")
    page = vera.get(f"{proxy.https}/", timeout=10)
    assert page.status_code == 200
    sources = re.findall(r'<iframe src="([^"]+)"', page.text)
    assert len(sources) == 12 and all(s.startswith(f"{PANEL}?") for s in sources)
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert policy["frame-src"] == "'self'"
    # No HSTS on localhost: it would pin HTTPS on every local port of the browser.
    assert "Strict-Transport-Security" not in page.headers
    # Plain HTTP is sent to HTTPS.
    redirect = requests.get(f"{proxy.http}/", allow_redirects=False, timeout=10)
    assert redirect.status_code == 308 and redirect.headers["Location"].startswith("https://localhost")


# --- In a real browser -------------------------------------------------------------------


def spki_hash(host: str, port: int) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of the certificate the proxy serves: the one
    certificate Chromium is told to accept (its local CA is in no trust store here)."""
    pem = ssl.get_server_certificate((host, port))
    key = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout"], input=pem.encode(), capture_output=True, check=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=key, capture_output=True, check=True
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_a_browser_shows_grafanas_panels_inside_the_console_through_the_proxy(
    proxy, httpserver, transactional_db
):
    require_service(chromium_available(), "/usr/bin/chromium is missing (make test-tools installs it)")
    make_user("vera", "ops_viewer")
    port = int(proxy.https.rsplit(":", 1)[1])
    options = launch_args()
    accept_proxy = f"--ignore-certificate-errors-spki-list={spki_hash('localhost', port)}"
    # Playwright started here, after the database and the proxy: its event loop would make
    # Django refuse the ORM calls of the fixtures' setup.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**{**options, "args": [*options["args"], accept_proxy]})
        try:
            SHOTS.mkdir(parents=True, exist_ok=True)
            for width, height in ((1366, 900), (375, 812)):
                page = browser.new_page(viewport={"width": width, "height": height})
                blocked: list[str] = []
                page.on(
                    "console",
                    lambda m, blocked=blocked: (
                        blocked.append(m.text) if "Content Security" in m.text else None
                    ),
                )
                log_in_page(page, SimpleNamespace(url=proxy.https), "vera")
                expect(page.locator("iframe")).to_have_count(12)
                # Each panel's frame loaded Grafana's page through the proxy with the
                # console's session cookie alone (one origin: no third-party cookie, no
                # Grafana login), and the CSP blocked nothing.
                # The frames load lazily: each is brought into view first (on a phone most
                # start below the fold).
                for index in range(12):
                    page.locator("iframe").nth(index).scroll_into_view_if_needed()
                    expect(page.frame_locator("iframe").nth(index).locator("body")).to_have_text("panel")
                assert blocked == []
                page.screenshot(path=str(SHOTS / f"console-through-proxy-{width}.png"), full_page=True)
                page.context.close()
        finally:
            browser.close()
    panel_users = [r.headers.get("X-WEBAUTH-USER") for r, _ in httpserver.log if r.path == PANEL]
    assert len(panel_users) >= 24 and set(panel_users) == {"console-vera"}
