from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from ops.api.models import ApiClient


def test_create_api_token_prints_a_working_token(db, capsys):
    call_command("create_api_token", "trading-engine")
    token = capsys.readouterr().out.strip()
    assert ApiClient.objects.for_token(token).name == "trading-engine"


def test_create_api_token_refuses_a_taken_name(db):
    ApiClient.issue("trading-engine")
    with pytest.raises(CommandError, match="exists"):
        call_command("create_api_token", "trading-engine")


def test_create_api_token_refuses_an_empty_name(db):
    with pytest.raises(CommandError):
        call_command("create_api_token", "  ")
