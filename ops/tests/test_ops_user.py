from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from ops.tests.conftest import make_user
from ops.trading.service import RESUME, Actor


def roles(username: str) -> list[str]:
    user = get_user_model().objects.get(username=username)
    return sorted(user.groups.values_list("name", flat=True))


def test_it_gives_an_existing_person_one_role_and_console_access(db):
    make_user("alice", "ops_viewer", staff=False)
    call_command("ops_user", "alice", "--role", "supervisor")
    assert roles("alice") == ["ops_supervisor"]
    alice = get_user_model().objects.get(username="alice")
    assert alice.is_staff and Actor.of(alice).has_perm(RESUME)


def test_a_new_role_replaces_the_old_one(db):
    make_user("bob", "ops_supervisor")
    call_command("ops_user", "bob", "--role", "viewer")
    assert roles("bob") == ["ops_viewer"]
    assert not Actor.of(get_user_model().objects.get(username="bob")).has_perm(RESUME)


def test_other_groups_are_kept(db):
    from django.contrib.auth.models import Group

    user = make_user("carol", "ops_operator")
    user.groups.add(Group.objects.create(name="risk-desk"))
    call_command("ops_user", "carol", "--role", "supervisor")
    assert roles("carol") == ["ops_supervisor", "risk-desk"]


def test_create_makes_a_staff_user_with_a_printed_password(db, capsys):
    call_command("ops_user", "dave", "--role", "operator", "--create")
    password = capsys.readouterr().out.split("(shown once): ")[1].split()[0]
    dave = get_user_model().objects.get(username="dave")
    assert dave.is_staff and not dave.is_superuser and dave.check_password(password)
    assert roles("dave") == ["ops_operator"]


def test_a_missing_user_without_create_is_an_error_and_creates_nothing(db):
    with pytest.raises(CommandError, match="--create"):
        call_command("ops_user", "nobody", "--role", "viewer")
    assert not get_user_model().objects.filter(username="nobody").exists()


def test_an_unknown_role_is_refused(db):
    make_user("erin")
    with pytest.raises(CommandError):
        call_command("ops_user", "erin", "--role", "admin")
    assert roles("erin") == []
