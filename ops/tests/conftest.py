from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from conftest import require_service
from ops.api.models import ApiClient
from ops.tests.processes import ROOT, free_port, start_process, stop_process, wait_until_ready  # noqa: F401


@pytest.fixture
def postgres(db) -> None:
    """The test needs the real Postgres (row locks, planner statistics, ...)."""
    require_service(connection.vendor == "postgresql", "DATABASE_URL does not point at Postgres")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    require_service(url.startswith("redis"), "REDIS_URL is not set to a Redis server")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require_service(False, f"Redis at {url} does not answer: {exc}")
    return url


def database_url() -> str:
    """A URL for the database this test run uses (the test database), for subprocesses."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def unreachable_database():
    """Point the default connection at a closed port (Postgres) or an impossible path."""
    key = "PORT" if connection.vendor == "postgresql" else "NAME"
    saved = {key: connection.settings_dict[key]}
    _reconnect_with(saved | {key: 1 if key == "PORT" else "/nonexistent/dir/db.sqlite3"})
    try:
        yield saved
    finally:
        _reconnect_with(saved)


@pytest.fixture(autouse=True)
def no_killswitch_role(settings):
    """A developer's KILLSWITCH_DATABASE_URL names a real database: no test connects there."""
    settings.KILLSWITCH_DATABASE_URL = ""


@pytest.fixture
def wide_pool():
    """A pool as large as the test's threads: a concurrency test means its 20 threads to
    hold a connection each at once, where production's pool (DB_POOL_SIZE) would queue them
    (and a queue of 3-second waits on a loaded machine is a flake, not the race)."""
    options = connection.settings_dict["OPTIONS"]
    pool = options.get("pool")
    if not pool:
        yield
        return
    connection.close_pool()
    options["pool"] = {**pool, "max_size": 40}
    try:
        yield
    finally:
        connection.close_pool()
        options["pool"] = pool


def _reconnect_with(settings_dict: dict) -> None:
    """The next query connects with these settings (a pool is built with the old ones)."""
    connection.close()
    if connection.vendor == "postgresql":
        connection.close_pool()
    connection.settings_dict.update(settings_dict)


def migrate_schema(targets: list[tuple[str, str]]) -> None:
    """Migrate to `targets` between the hooks `manage.py migrate` sends around its
    migrations (ops/apps.py: SQLite's append-only guards off while the tables change,
    since SQLite refuses to drop a column a trigger names, and on again after)."""
    from django.apps import apps
    from django.db.migrations.executor import MigrationExecutor

    from ops.apps import _after_migrate, _before_migrate

    ops = apps.get_app_config("ops")
    _before_migrate(ops, using=connection.alias)
    MigrationExecutor(connection).migrate(targets)
    _after_migrate(ops, using=connection.alias)


def latest_migrations() -> list[tuple[str, str]]:
    from django.db.migrations.loader import MigrationLoader

    return MigrationLoader(connection).graph.leaf_nodes()


@contextlib.contextmanager
def unreadable_trading_state():
    """The trading state table gone (a botched migration): a real unreadable state on
    both backends, for the gate's fail-closed path. Run inside the test's transaction."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ops_tradingstate RENAME TO ops_tradingstate_away")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE ops_tradingstate_away RENAME TO ops_tradingstate")


@pytest.fixture
def database_down(transactional_db):
    with unreachable_database():
        yield


class _Token(str):
    saved: dict


@pytest.fixture
def database_down_with_token(transactional_db):
    """A valid token issued while the database was up, then the database goes away."""
    _, token = ApiClient.issue("engine")
    with unreachable_database() as saved:
        value = _Token(token)
        value.saved = saved
        yield value


def celery_worker(queue: str) -> list[str]:
    return [
        "celery",
        "-A",
        "investiq",
        "worker",
        "--pool=solo",
        "-Q",
        queue,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]


@pytest.fixture
def celery_worker_process(transactional_db, postgres, redis_url, tmp_path):
    """A real `celery worker` on Redis, against this run's test database."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": database_url(), "CELERY_BROKER_URL": redis_url, "SECRET_KEY": "worker-test-key"}
    worker = start_process(celery_worker(queue), env, tmp_path / "worker.log")
    yield queue
    stop_process(worker)


class ApiTestClient(Client):
    """A Django test client that speaks JSON with a bearer token."""

    def __init__(self, token: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token

    def post_json(self, path: str, payload: Any, token: str | None = "default", **extra: Any):
        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        return self.post(path, body, content_type="application/json", headers=headers, **extra)

    def get_json(self, path: str, token: str | None = "default", **extra: Any):
        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.get(path, headers=headers, **extra)


@pytest.fixture
def api_token(db) -> str:
    _, token = ApiClient.issue("trading-engine")
    return token


@pytest.fixture
def api(api_token: str) -> ApiTestClient:
    return ApiTestClient(token=api_token)


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_superuser("ops-admin", password="correct horse battery")


@pytest.fixture
def admin_client_logged_in(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


def trade_payload(**overrides: Any) -> dict[str, Any]:
    payload = {
        "client_order_id": "ord-1",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "10",
        "price": "228.50",
        "strategy": "momentum",
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not ...}


def make_user(username: str, *roles: str, staff: bool = True, superuser: bool = False):
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(
        username, password="correct horse battery", is_staff=staff, is_superuser=superuser
    )
    user.groups.add(*Group.objects.filter(name__in=roles))
    return user


@pytest.fixture
def viewer(db):
    return make_user("vera-viewer", "ops_viewer")


@pytest.fixture
def operator(db):
    return make_user("otto-operator", "ops_operator")


@pytest.fixture
def supervisor(db):
    return make_user("sam-supervisor", "ops_supervisor")


@pytest.fixture
def supervisor2(db):
    return make_user("sue-supervisor", "ops_supervisor")


@pytest.fixture
def one_person_resume(settings):
    settings.TRADING_TWO_PERSON_RESUME = False


@pytest.fixture
def two_person_resume(settings):
    settings.TRADING_TWO_PERSON_RESUME = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Browser tests last: pytest-playwright's browser is session-wide, and while its
    # event loop lives in this thread Django refuses synchronous ORM calls (the browser
    # module allows them for itself only). After the browser tests nothing else runs.
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


def wait_for_session(query_part: str, wait_event_type: str) -> None:
    """Until a session running `query_part` waits on `wait_event_type` (pg_stat_activity):
    'Lock' for a row lock, 'Timeout' for pg_sleep."""
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = %s AND query LIKE %s",
                [wait_event_type, f"%{query_part}%"],
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    pytest.fail(f"no session running {query_part!r} waited on {wait_event_type}")
