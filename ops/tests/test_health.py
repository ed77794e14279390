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
        ("TooManyConnections", "Database unavailable"),  # 53300: no new connection, the gate neither
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
