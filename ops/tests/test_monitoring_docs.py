"""The monitoring commands of QUICKSTART, INTEGRATION, monitoring/README and the README's
monitoring part, run as written (`docker compose exec web python` is the container's
`python`; here the same manage.py commands run in process on the demo data).

Commands that need the running monitoring stack (check_monitoring without
--static-only, which asks Prometheus and Alertmanager) are run by the live tests
(test_alert_loop.py), not here. Then what the quick start promises must hold: the
webhook token it creates is accepted by the webhook, and a second supervisor approves
the drill's resume in the console.
"""

from __future__ import annotations

import re
import shlex
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from ops.alerts.models import Heartbeat
from ops.tests.conftest import ApiTestClient
from ops.tests.processes import ROOT
from ops.tests.test_alerts import notification, watchdog
from ops.trading.models import ResumeRequest, TradingState

DOCS = ("monitoring/QUICKSTART.md", "monitoring/INTEGRATION.md", "monitoring/README.md", "README.md")
COMMAND = re.compile(r"^(?:docker compose exec (?:-T )?web python|\.venv/bin/python|python) manage\.py (.+)$")
PLACEHOLDERS = {"<supervisor>": "bob", "<other>": "carol", "<name>": "sam"}
NEEDS_THE_STACK = ("check_monitoring",)  # unless --static-only


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def documented_commands(path: str) -> list[list[str]]:
    text = (ROOT / path).read_text()
    if path == "README.md":  # the README's monitoring part only
        text = text[text.index("\n## Monitoring\n") :]
        text = text[: text.index("\n## ", 1)]
    commands = []
    for block in shell_blocks(text):
        for line in block.splitlines():
            found = COMMAND.match(line.strip())
            if not found:
                continue
            command = found.group(1).split(" #")[0]
            command = re.sub(r"\s*\[[^\]]*\]", "", command)  # optional parts left out
            for placeholder, value in PLACEHOLDERS.items():
                command = command.replace(placeholder, value)
            commands.append(shlex.split(command))
    return commands


def test_every_doc_has_commands_and_they_are_found():
    found = {path: documented_commands(path) for path in DOCS}
    assert ["create_api_token", "alertmanager", "--scopes", "alerts"] in found["monitoring/QUICKSTART.md"]
    assert any(args[0] == "trading" for args in found["monitoring/QUICKSTART.md"])
    assert any(args[:2] == ["check_monitoring", "--static-only"] for args in found["README.md"])
    # The shell refuses approvals: no doc may tell anyone to approve from it.
    for path in DOCS:
        assert "trading approve" not in (ROOT / path).read_text(), path


@pytest.mark.parametrize("path", DOCS)
def test_the_monitoring_commands_run_as_written(db, settings, capsys, path, two_person_resume):
    settings.DEBUG = True
    call_command("seed_demo")
    capsys.readouterr()
    ran = []
    for args in documented_commands(path):
        if args[0] in NEEDS_THE_STACK and "--static-only" not in args:
            continue
        out = StringIO()
        call_command(*args, stdout=out)
        ran.append((args, out.getvalue()))
    assert ran, f"{path}: no command ran"

    if path == "monitoring/QUICKSTART.md":
        # Step 2's token is what Alertmanager needs: the webhook accepts it.
        ((_, printed),) = [
            (args, out) for args, out in ran if args[:2] == ["create_api_token", "alertmanager"]
        ]
        token = printed.strip().splitlines()[-1].strip()
        response = ApiTestClient(token=token).post_json(
            "/api/v1/alerts/alertmanager", notification(watchdog())
        )
        assert response.status_code == 200, response.content
        assert Heartbeat.objects.exists()
        # The drill: halted, then a resume request that a second supervisor approves in
        # the console, as the quick start says.
        request = ResumeRequest.objects.get(scope="global")
        assert request.requested_by.username == "bob"
        console = Client()
        console.force_login(get_user_model().objects.get(username="carol"))
        console.post(f"/console/requests/{request.pk}/approve")
        assert TradingState.objects.get(scope="global").state == "ACTIVE"


def test_a_token_without_the_alerts_scope_is_refused_by_the_webhook(db):
    """Why the quick start says --scopes alerts: the default scopes get 403."""
    out = StringIO()
    call_command("create_api_token", "alertmanager", stdout=out)
    token = out.getvalue().strip().splitlines()[-1].strip()
    response = ApiTestClient(token=token).post_json("/api/v1/alerts/alertmanager", notification(watchdog()))
    assert response.status_code == 403
    assert not Heartbeat.objects.exists()


def test_placeholders_cover_every_angle_bracket_in_the_commands():
    for path in DOCS:
        for block in shell_blocks((ROOT / path).read_text()):
            for line in block.splitlines():
                if COMMAND.match(line.strip()):
                    left = set(re.findall(r"<\w+>", line.split(" #")[0])) - set(PLACEHOLDERS)
                    assert not left, (path, line)
