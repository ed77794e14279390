"""Login throttling (django-axes): 10 failed logins for one username lock it for 15
minutes, even with the right password, on the one login view the console and the admin
share; the lockout is logged, shown in the admin, and released by a supervisor command."""

from __future__ import annotations

import logging
import re
import shlex
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import Client

from ops.tests.conftest import make_user
from ops.tests.processes import ROOT, NotLoggedIn, log_in

LOGIN = "/admin/login/"
PASSWORD = "correct horse battery"  # make_user's


def attempt(
    username: str,
    password: str,
    *,
    next_path: str = "/",
    remote_addr: str = "127.0.0.1",
    user_agent: str = "pytest",
):
    """One login through the form, as a browser posts it; the answer, not followed."""
    return Client().post(
        f"{LOGIN}?next={next_path}",
        {"username": username, "password": password, "next": next_path},
        REMOTE_ADDR=remote_addr,
        headers={"user-agent": user_agent},
    )


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def fail(username: str, times: int, **how) -> list[int]:
    return [attempt(username, "wrong password", **how).status_code for _ in range(times)]


def age_attempts(by: timedelta) -> None:
    """As if the recorded failures happened `by` earlier (axes compares attempt times)."""
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - by)


@pytest.fixture(autouse=True)
def quick_password_checks(settings):
    # Dozens of failed logins per test, each a full PBKDF2 check (~0.3 s) otherwise.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db):
    return make_user("alice", "ops_operator")


@pytest.mark.parametrize("next_path", ["/", "/admin/"], ids=["console", "admin"])
def test_ten_failed_logins_lock_the_name_even_with_the_right_password(alice, next_path):
    assert fail("alice", 9, next_path=next_path) == [200] * 9  # the form, with its error
    locked = attempt("alice", "wrong password", next_path=next_path)
    assert locked.status_code == 429
    assert "Login locked" in locked.content.decode()
    right = attempt("alice", PASSWORD, next_path=next_path)
    assert right.status_code == 429 and not logged_in(right)
    assert "until" in right.content.decode() and "UTC" in right.content.decode()


def test_nine_failed_logins_still_let_the_right_password_in(alice):
    fail("alice", 9)
    assert logged_in(attempt("alice", PASSWORD))


def test_a_lockout_is_by_username_not_by_address(alice):
    """A trading floor shares one NAT address: alice's lockout leaves bob's login alone."""
    make_user("bob", "ops_supervisor")
    fail("alice", 10)
    assert logged_in(attempt("bob", PASSWORD))
    assert attempt("alice", PASSWORD).status_code == 429


def test_failures_from_many_addresses_and_browsers_count_against_one_name(alice):
    """Why axes.W006 is silenced: changing address or browser does not reset the count."""
    for n in range(10):
        attempt("alice", "wrong password", remote_addr=f"10.0.0.{n}", user_agent=f"browser/{n}")
    assert attempt("alice", PASSWORD, remote_addr="10.9.9.9", user_agent="another").status_code == 429


def test_the_lockout_ends_fifteen_minutes_after_the_failure_that_caused_it(alice):
    fail("alice", 10)
    fail("alice", 3)  # refused while locked: they do not extend it
    age_attempts(timedelta(minutes=14, seconds=50))
    assert attempt("alice", PASSWORD).status_code == 429
    age_attempts(timedelta(seconds=11))
    assert logged_in(attempt("alice", PASSWORD))


def test_failures_further_apart_than_fifteen_minutes_do_not_add_up(alice):
    fail("alice", 9)
    age_attempts(timedelta(minutes=15, seconds=1))
    fail("alice", 1)
    assert logged_in(attempt("alice", PASSWORD))


def test_a_lockout_is_logged_with_the_username(alice, caplog):
    caplog.set_level(logging.WARNING, logger="ops.logins")
    fail("alice", 10, remote_addr="10.1.2.3")
    attempt("alice", PASSWORD)
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("ops.logins")]
    assert len(lines) == 2, lines
    assert lines[0].startswith("login locked out: 'alice' after 10 failed logins (limit 10, from 10.1.2.3)")
    assert "until" in lines[0] and "UTC" in lines[0]
    assert lines[1].startswith("login refused: 'alice' is locked out until")
    assert PASSWORD not in " ".join(lines)


@pytest.mark.parametrize("role", ["ops_viewer", "ops_operator", "ops_supervisor"])
def test_staff_of_every_role_see_lockouts_in_the_admin(alice, role):
    fail("alice", 10, remote_addr="10.1.2.3")
    fail("carol", 2)
    staff = Client()
    staff.force_login(make_user("on-call", role))
    assert "/admin/axes/accessattempt/" in staff.get("/admin/").content.decode()
    page = staff.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    rows = {row.username: row for row in page.context["cl"].result_list}
    assert set(rows) == {"alice", "carol"}
    text = page.content.decode()
    assert "LOCKED OUT until" in text and "10.1.2.3" in text
    assert "2 of 10 failed logins counted" in text
    detail = staff.get(f"/admin/axes/accessattempt/{rows['alice'].pk}/change/").content.decode()
    assert "LOCKED OUT until" in detail and re.search(r"\d\d:\d\d:\d\d UTC", detail)
    # Read-only: deleting a row would release the lockout without a record.
    assert staff.get(f"/admin/axes/accessattempt/{rows['alice'].pk}/delete/").status_code == 403
    age_attempts(timedelta(minutes=15, seconds=1))
    assert staff.get("/admin/axes/accessattempt/").content.decode().count("expired: no longer counted") == 2


def test_a_supervisor_releases_a_lockout_from_the_shell_and_it_is_recorded(alice, supervisor, capsys, caplog):
    fail("alice", 10)
    call_command(
        "login_lockouts", "release", "alice", "--actor", supervisor.username, "--reason", "alice called in"
    )
    assert "Released 'alice' (was locked until" in capsys.readouterr().out
    assert logged_in(attempt("alice", PASSWORD))
    entry = LogEntry.objects.get(object_id=str(alice.pk))
    assert entry.user == supervisor
    assert "Released the login lockout of 'alice' (locked until" in entry.change_message
    assert entry.change_message.endswith(": alice called in") and "from cli " in entry.change_message
    released = [r.getMessage() for r in caplog.records if "released by" in r.getMessage()]
    assert released and released[0].startswith(f"login lockout of 'alice' released by {supervisor.username}")


@pytest.mark.parametrize(
    ("actor", "reason", "refused"),
    [
        (None, "x", "--actor"),
        ("nobody", "x", "No user"),
        ("otto-operator", "x", "not an active supervisor"),
        ("sam-supervisor", "", "--reason"),
    ],
)
def test_only_a_supervisor_with_a_reason_releases(alice, operator, supervisor, actor, reason, refused):
    fail("alice", 10)
    args = ["login_lockouts", "release", "alice", "--reason", reason]
    with pytest.raises(CommandError, match=refused):
        call_command(*args, *(["--actor", actor] if actor else []))
    assert attempt("alice", PASSWORD).status_code == 429
    assert not LogEntry.objects.exists()


def test_the_status_command_lists_who_is_locked_out(alice, capsys):
    call_command("login_lockouts", "status")
    assert "nobody is locked out" in capsys.readouterr().out
    fail("alice", 10, remote_addr="10.1.2.3")
    fail("carol", 2)
    call_command("login_lockouts", "status")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("alice") and "LOCKED OUT until" in lines[0] and "10.1.2.3" in lines[0]
    assert lines[1].startswith("carol") and "2 of 10 failed logins" in lines[1]


def test_a_real_browser_session_is_locked_out_of_the_console_login(live_server, alice, settings):
    """Over HTTP through the form (CSRF cookie and all), as processes.log_in() logs in."""
    settings.CSRF_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = False  # plain HTTP here
    for _ in range(10):
        with pytest.raises(NotLoggedIn):
            log_in(live_server.url, "alice", "wrong password")
    with pytest.raises(NotLoggedIn, match="HTTP 429"):
        log_in(live_server.url, "alice", PASSWORD)


def test_the_readme_lockout_commands_run_as_written_on_the_demo(db, settings, capsys):
    settings.DEBUG = True  # seed_demo's condition
    call_command("seed_demo")
    alice = get_user_model().objects.get(username="alice")
    alice.set_password(PASSWORD)
    alice.save()
    fail("alice", 10)
    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"^\.venv/bin/python manage\.py (login_lockouts .*)$", readme, re.MULTILINE)
    assert [shlex.split(line)[:2] for line in lines] == [
        ["login_lockouts", "status"],
        ["login_lockouts", "release"],
    ]
    capsys.readouterr()
    for line in lines:
        call_command(*shlex.split(line))
    assert "alice" in capsys.readouterr().out
    assert logged_in(attempt("alice", PASSWORD))
