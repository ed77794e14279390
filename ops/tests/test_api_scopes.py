"""Token scopes: given by the command and the admin, checked on every endpoint
(see test_alerts.py::test_every_endpoint_needs_its_scope), defaulted for old clients."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection

from ops.api.models import DEFAULT_SCOPES, ApiClient
from ops.tests.conftest import latest_migrations, migrate_schema
from ops.tests.processes import ROOT


def test_a_new_token_has_the_default_scopes(db, capsys):
    call_command("create_api_token", "trading-engine")
    client = ApiClient.objects.for_token(capsys.readouterr().out.strip())
    assert client.scopes == DEFAULT_SCOPES == "trades,analyses,status"


def test_the_command_gives_the_scopes_asked_for_in_canonical_order(db, capsys):
    call_command("create_api_token", "alertmanager", "--scopes", "status, alerts,alerts")
    client = ApiClient.objects.for_token(capsys.readouterr().out.strip())
    assert client.scopes == "alerts,status"
    assert client.has_scope("alerts") and not client.has_scope("trades")


@pytest.mark.parametrize("scopes", ["admin", "trades,everything", "", " , "])
def test_the_command_refuses_unknown_or_no_scopes_and_creates_nothing(db, scopes):
    with pytest.raises(CommandError, match="scope"):
        call_command("create_api_token", "x", "--scopes", scopes)
    assert not ApiClient.objects.exists()


def test_the_database_refuses_unknown_scopes(db):
    client, _ = ApiClient.issue("x")
    with pytest.raises(IntegrityError):
        ApiClient.objects.filter(pk=client.pk).update(scopes="trades,root")


def test_the_admin_shows_and_edits_scopes(admin_client_logged_in):
    client, _ = ApiClient.issue("engine")
    page = admin_client_logged_in.get(f"/admin/ops/apiclient/{client.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="alerts" id="id_scopes_2">' in html  # offered, not ticked
    assert 'value="trades" id="id_scopes_0" checked>' in html
    response = admin_client_logged_in.post(
        f"/admin/ops/apiclient/{client.pk}/change/", {"name": "engine", "scopes": ["alerts", "status"]}
    )
    assert response.status_code == 302
    client.refresh_from_db()
    assert client.scopes == "alerts,status"
    assert "alerts,status" in admin_client_logged_in.get("/admin/ops/apiclient/").content.decode()


def test_the_admin_refuses_a_client_without_scopes(admin_client_logged_in):
    response = admin_client_logged_in.post("/admin/ops/apiclient/add/", {"name": "nothing"})
    assert response.status_code == 200  # the form again, with the error
    assert not ApiClient.objects.exists()


def test_existing_clients_get_the_default_scopes_from_the_migration(transactional_db):
    latest = latest_migrations()
    migrate_schema([("ops", "0007_review_fixes")])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ops_apiclient (name, token_hash, token_hint, is_active, created_at) "
            "VALUES ('old-engine', 'h', 'iq_', true, CURRENT_TIMESTAMP)"
        )
    migrate_schema(latest)
    with connection.cursor() as cursor:
        cursor.execute("SELECT scopes FROM ops_apiclient WHERE name = 'old-engine'")
        assert cursor.fetchone()[0] == DEFAULT_SCOPES


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"BrokerUnreachable": "global:STOPPED"}', "HALTED or :REDUCING"),
        ('{"BrokerUnreachable": "everywhere:HALTED"}', "not a scope"),
        ('{"bad name!": "global:HALTED"}', "not an alert name"),
        ('{"KillSwitchDrillHalted": "global:HALTED"}', "a drill or the heartbeat must not halt trading"),
        ('["global:HALTED"]', "not a JSON object"),
    ],
)
def test_a_bad_alert_action_mapping_is_a_configuration_error(value, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DEBUG": "true",
            "ALERT_ACTIONS": value,
            "INVESTIQ_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ops.E004" in result.stderr and message in result.stderr
