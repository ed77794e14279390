from __future__ import annotations

from django.test import Client


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
