"""People are paged where they are: Slack and Discord from a real Alertmanager.

alertmanager-entrypoint.sh renders monitoring/alertmanager.yml from the environment (the
compose service's entrypoint); these tests run that script with Debian's Alertmanager
behind it, posting to local HTTP servers that play Slack, Discord and the console.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from ops.tests.monitoring_files import MONITORING, run, runnable_copy, tool
from ops.tests.processes import free_port, stop_process
from ops.tests.test_monitoring_live import WEBHOOK_PATH, wait_for

ENTRYPOINT = MONITORING / "alertmanager-entrypoint.sh"
CHANNELS = {
    "SLACK_PAGER_WEBHOOK_URL": "/slack/pager",
    "SLACK_CHAT_WEBHOOK_URL": "/slack/chat",
    "DISCORD_PAGER_WEBHOOK_URL": "/discord/pager",
    "DISCORD_CHAT_WEBHOOK_URL": "/discord/chat",
}
CONSOLE_URL = "https://ops.example.test/"


def render(source: Path, runtime: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CHANNELS and k != "CONSOLE_URL"}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "--render-only"],
        env={
            **clean,
            "ALERTMANAGER_CONFIG_DIR": str(source),
            "ALERTMANAGER_RUNTIME_DIR": str(runtime),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def receivers(config: Path) -> dict[str, dict]:
    return {r["name"]: r for r in yaml.safe_load(config.read_text())["receivers"]}


def test_unconfigured_channels_send_nothing_and_the_console_still_gets_everything(tmp_path):
    copy = runnable_copy(tmp_path)
    done = render(copy, tmp_path / "runtime")
    assert done.returncode == 0, done.stderr
    rendered = Path(done.stdout.strip())
    found = receivers(rendered)
    # Receivers without integrations: routed alerts stop there, no delivery fails.
    assert found["pager"].keys() == {"name"} and found["chat"].keys() == {"name"}
    assert found["console"]["webhook_configs"][0]["send_resolved"] is True
    assert rendered.read_text() == (copy / "alertmanager.yml").read_text()
    result = run(tool("amtool"), "check-config", rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_configured_channels_are_switched_on_with_their_urls(tmp_path):
    copy = runnable_copy(tmp_path)
    # A real Slack URL shape, with characters sed would have taken as codes.
    slack = "https://hooks.slack.com/services/T000/B000/x&y\\z"
    done = render(
        copy,
        tmp_path / "runtime",
        SLACK_PAGER_WEBHOOK_URL=slack,
        DISCORD_CHAT_WEBHOOK_URL="https://discord.com/api/webhooks/1/abc",
    )
    assert done.returncode == 0, done.stderr
    rendered = Path(done.stdout.strip())
    found = receivers(rendered)
    assert found["pager"]["slack_configs"][0]["api_url"] == slack
    assert "discord_configs" not in found["pager"]
    assert found["chat"]["discord_configs"][0]["webhook_url"] == "https://discord.com/api/webhooks/1/abc"
    assert "slack_configs" not in found["chat"]
    for config in [*found["pager"]["slack_configs"], *found["chat"]["discord_configs"]]:
        assert config["send_resolved"] is True
    # Private: only the owner reads the rendered config (it holds the URLs).
    assert rendered.stat().st_mode & 0o077 == 0 and rendered.parent.stat().st_mode & 0o077 == 0
    result = run(tool("amtool"), "check-config", rendered)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_PAGER_WEBHOOK_URL", "hooks.slack.com/services/T/B/x"),  # no scheme
        ("DISCORD_PAGER_WEBHOOK_URL", "https://discord.com/api/webhooks/1/a' b"),  # ends the YAML string
        ("SLACK_CHAT_WEBHOOK_URL", "https://x.test/{{ .Alerts }}"),
        ("CONSOLE_URL", "javascript:alert(1)"),
    ],
)
def test_a_bad_url_is_refused_by_name_and_nothing_is_rendered(tmp_path, name, value):
    copy = runnable_copy(tmp_path)
    done = render(copy, tmp_path / "runtime", **{name: value})
    assert done.returncode == 2
    assert name in done.stderr
    assert not (tmp_path / "runtime").exists()


# --- A real Alertmanager posting to local Slack and Discord ------------------------------


@pytest.fixture
def alertmanager(httpserver, tmp_path) -> Iterator[str]:
    """The rendered config with every channel on, served by Debian's Alertmanager
    through the entrypoint itself; timings shortened so a test sees resolved messages."""
    binary = tool("prometheus-alertmanager")
    for path in CHANNELS.values():
        httpserver.expect_request(path, method="POST").respond_with_data("ok")
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_json({"stored": True})
    base = httpserver.url_for("/").rstrip("/")
    copy = runnable_copy(tmp_path, {"alertmanager_webhook_token": "paging-test-token"})
    config = copy / "alertmanager.yml"
    text = config.read_text().replace("http://web:8000", base)
    text = re.sub(r"group_wait: \w+", "group_wait: 1s", text)
    text = re.sub(r"group_interval: \w+", "group_interval: 1s", text)
    config.write_text(text)
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **{name: base + path for name, path in CHANNELS.items()},
        "CONSOLE_URL": CONSOLE_URL,
        "ALERTMANAGER_CONFIG_DIR": str(copy),
        "ALERTMANAGER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "ALERTMANAGER_BIN": binary,
    }
    log = tmp_path / "alertmanager.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                "sh",
                str(ENTRYPOINT),
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address={address}",
                "--cluster.listen-address=",  # no gossip port on every interface
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://{address}"
        wait_for("Alertmanager", lambda: requests.get(f"{url}/-/ready", timeout=3).ok)
        yield url
    except BaseException:
        print(log.read_text()[-3000:])
        raise
    finally:
        stop_process(process)


def alert(name: str, severity: str, *, ends: datetime | None = None, **labels: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "job": "investiq-api", **labels},
        "annotations": {
            "summary": f"{name} summary for the test",
            "runbook_url": f"https://github.com/example/investiq/blob/main/monitoring/README.md#{name.lower()}",
        },
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (ends or now + timedelta(hours=1)).isoformat(),
    }


def posted(httpserver, path: str) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in httpserver.log if request.path == path]


def slack_text(body: dict) -> tuple[str, str, str]:
    attachment = body["attachments"][0]
    return attachment["title"], attachment["text"], attachment.get("title_link", "")


def discord_text(body: dict) -> tuple[str, str]:
    embed = body["embeds"][0]
    return embed["title"], embed["description"]


def test_critical_pages_slack_and_discord_warnings_go_to_chat_and_both_resolve(alertmanager, httpserver):
    critical = alert("CircuitBreakerTripped", "critical")
    warning = alert("HighLatency", "warning")
    drill = alert("KillSwitchDrillFailed", "critical", console_only="true")
    requests.post(
        f"{alertmanager}/api/v2/alerts", json=[critical, warning, drill], timeout=5
    ).raise_for_status()

    wait_for("the pages", lambda: posted(httpserver, "/slack/pager") and posted(httpserver, "/discord/pager"))
    wait_for(
        "the chat messages", lambda: posted(httpserver, "/slack/chat") and posted(httpserver, "/discord/chat")
    )
    wait_for(
        "the console's three groups",
        lambda: (
            {a["labels"]["alertname"] for b in posted(httpserver, WEBHOOK_PATH) for a in b["alerts"]}
            == {"CircuitBreakerTripped", "HighLatency", "KillSwitchDrillFailed"}
        ),
    )

    for path, name, severity in [
        ("/slack/pager", "CircuitBreakerTripped", "critical"),
        ("/slack/chat", "HighLatency", "warning"),
    ]:
        title, text, link = slack_text(posted(httpserver, path)[0])
        assert title == f"[FIRING:1] {name} ({severity})"
        assert f"{name} - severity {severity}" in text
        assert f"Summary: {name} summary for the test" in text
        assert (
            f"Runbook: https://github.com/example/investiq/blob/main/monitoring/README.md#{name.lower()}"
            in text
        )
        assert f"Console: {CONSOLE_URL}" in text and link == CONSOLE_URL
        assert posted(httpserver, path)[0]["attachments"][0]["color"] == (
            "danger" if severity == "critical" else "warning"
        )
    for path, name, severity in [
        ("/discord/pager", "CircuitBreakerTripped", "critical"),
        ("/discord/chat", "HighLatency", "warning"),
    ]:
        title, text = discord_text(posted(httpserver, path)[0])
        assert title == f"[FIRING:1] {name} ({severity})"
        assert f"Summary: {name} summary for the test" in text
        assert (
            f"Runbook: https://github.com/example/investiq/blob/main/monitoring/README.md#{name.lower()}"
            in text
        )
        assert f"Console: {CONSOLE_URL}" in text
    # Nobody is paged or told in chat about the drill, nor the pager about the warning.
    everything_sent = json.dumps([posted(httpserver, path) for path in CHANNELS.values()])
    assert "KillSwitchDrillFailed" not in everything_sent
    assert all(
        "HighLatency" not in json.dumps(b)
        for b in posted(httpserver, "/slack/pager") + posted(httpserver, "/discord/pager")
    )
    assert all(
        "CircuitBreakerTripped" not in json.dumps(b)
        for b in posted(httpserver, "/slack/chat") + posted(httpserver, "/discord/chat")
    )

    # Resolved: each channel says so, once the alerts end.
    ended = datetime.now(UTC)
    resolved = [
        alert("CircuitBreakerTripped", "critical", ends=ended),
        alert("HighLatency", "warning", ends=ended),
    ]
    requests.post(f"{alertmanager}/api/v2/alerts", json=resolved, timeout=5).raise_for_status()

    def resolved_titles(path: str, name: str) -> list[str]:
        titles = [
            b["attachments"][0]["title"] if "attachments" in b else b["embeds"][0]["title"]
            for b in posted(httpserver, path)
        ]
        return [t for t in titles if t.startswith("[RESOLVED]") and name in t]

    for path, name in [
        ("/slack/pager", "CircuitBreakerTripped"),
        ("/discord/pager", "CircuitBreakerTripped"),
        ("/slack/chat", "HighLatency"),
        ("/discord/chat", "HighLatency"),
    ]:
        wait_for(f"the resolved message on {path}", lambda path=path, name=name: resolved_titles(path, name))
    last = posted(httpserver, "/slack/pager")[-1]["attachments"][0]
    assert last["color"] == "good" and "RESOLVED CircuitBreakerTripped - severity critical" in last["text"]
    assert f"Console: {CONSOLE_URL}" in posted(httpserver, "/discord/chat")[-1]["embeds"][0]["description"]
