from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from django.test import Client

from ops.health.probes import Database, Redis
from ops.http import Timeout
from ops.views import readiness_probes


def test_healthz_answers_200_without_io(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_200_when_the_database_answers(db):
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_answers_503_when_the_broker_is_unreachable(db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "ConnectionError" in body["checks"]["broker"]


def test_readyz_answers_503_when_the_database_is_unreachable(database_down):
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] != "ok"


def test_the_api_answers_503_not_500_when_the_database_is_unreachable(database_down):
    response = Client().post(
        "/api/v1/analyses", "{}", content_type="application/json", headers={"Authorization": "Bearer iq_x"}
    )
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


def test_readyz_does_not_reveal_connection_details(db, settings):
    settings.CELERY_BROKER_URL = "redis://secret-user:hunter2@127.0.0.1:1/0"
    body = Client().get("/readyz").content.decode()
    assert "hunter2" not in body and "secret-user" not in body and "127.0.0.1" not in body


def test_readyz_probes_the_broker_with_the_redis_probe_and_a_one_second_timeout(settings):
    settings.CELERY_BROKER_URL = "redis://user:pw@127.0.0.1:6379/3"
    assert readiness_probes() == (
        Database(),
        Redis(name="broker", url="redis://user:pw@127.0.0.1:6379/3", timeout=Timeout(1.0, 1.0)),
    )


def test_readyz_probes_no_broker_server_when_the_broker_is_the_file_system(db, settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    response = Client().get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "checks": {"database": "ok"}})


def test_readyz_answers_200_when_the_real_redis_broker_answers(db, settings, redis_url):
    settings.CELERY_BROKER_URL = redis_url
    settings.REDIS_URL = ""  # the broker is probed at its own URL
    response = Client().get("/readyz")
    assert (response.status_code, response.json()["checks"]) == (200, {"database": "ok", "broker": "ok"})


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_readyz_answers_503_when_the_broker_hangs(db, settings, silent_port):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{silent_port}/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unreachable (TimeoutError)"}


def test_an_api_path_outside_the_api_wrapper_answers_503_when_the_database_is_unreachable(
    transactional_db,
):
    # handler500 sees the cause: a lost database is an outage (503), not a bug (500).
    import json

    from django.db import OperationalError, connection
    from django.test import RequestFactory

    from ops.api.errors import server_error
    from ops.tests.conftest import unreachable_database

    with unreachable_database():
        try:
            connection.ensure_connection()
        except OperationalError:
            response = server_error(RequestFactory().get("/api/v1/anything"))
        else:
            pytest.fail("the unreachable database answered")
    assert response.status_code == 503
    assert json.loads(response.content)["error"] == "database_unavailable"


@pytest.mark.parametrize(
    ("cause", "page"),
    [
        ("TooManyConnections", "Database full"),  # 53300: up, admitting no one new
        ("AdminShutdown", "Database unavailable"),  # 57P01
        ("QueryCanceled", "Database busy"),  # 57014, a statement timeout
        ("LockNotAvailable", "Database busy"),  # 55P03
    ],
)
def test_the_error_page_tells_an_outage_from_a_busy_database_by_sqlstate(db, cause, page):
    import psycopg.errors
    from django.db import OperationalError
    from django.test import RequestFactory

    from ops.api.errors import server_error

    try:
        raise OperationalError("database error") from getattr(psycopg.errors, cause)("from the server")
    except OperationalError:
        response = server_error(RequestFactory().get("/"))
    assert response.status_code == 503
    assert page in response.content.decode()


@pytest.mark.parametrize(
    ("refusal", "page"),
    [
        (None, "Database busy"),  # every pooled connection busy, the server takes new ones
        ("connection failed: FATAL:  sorry, too many clients already", "Database full"),
        ("connection failed: FATAL:  remaining connection slots are reserved for roles ...", "Database full"),
        ("connection failed: Connection refused", "Database unavailable"),
    ],
)
def test_a_pool_that_gave_no_connection_is_told_apart_by_what_the_server_says(db, monkeypatch, refusal, page):
    """PoolTimeout says only "no connection in time": a direct connect (server_refusal)
    tells a busy pool from a full server and from one that is gone."""
    import psycopg
    from django.db import OperationalError
    from django.test import RequestFactory
    from psycopg_pool import PoolTimeout

    from ops.api import errors

    monkeypatch.setattr(errors, "server_refusal", lambda: refusal and psycopg.OperationalError(refusal))
    try:
        raise OperationalError("no connection") from PoolTimeout("couldn't get a connection after 3.00 sec")
    except OperationalError:
        response = errors.server_error(RequestFactory().get("/"))
    assert response.status_code == 503
    assert page in response.content.decode()


def test_the_refusal_probe_is_made_once_for_many_failing_requests(db, monkeypatch):
    """However many requests time out on the pool at once, this process opens one
    connection beyond it to ask the server, and reuses the answer for a moment."""
    import threading

    import psycopg

    from ops import db as ops_db

    made = []

    class Refused(psycopg.OperationalError):
        pass

    def connect(**kwargs):
        made.append(1)
        raise Refused("too many clients already")

    monkeypatch.setattr(ops_db, "_probe", (float("-inf"), None))
    monkeypatch.setattr(ops_db.psycopg, "connect", connect)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(ops_db.server_refusal())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and len(answers) == 20 and all(isinstance(a, Refused) for a in answers)
