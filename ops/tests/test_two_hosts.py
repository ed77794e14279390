"""Two web hosts on one Postgres: the halt and the database-backed metrics are one truth.

Two separate gunicorn servers stand in for two hosts behind a load balancer: separate
processes, separate PROMETHEUS_MULTIPROC_DIR each (as two machines would have), one
database. A halt made in server A's console is refused by server B on B's very next
request, and both export the same values for every database-backed metric.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ops.api.models import ApiClient
from ops.health.models import DependencyStatus, Health
from ops.metrics import COLLECTED
from ops.tests.conftest import database_url, make_user, trade_payload
from ops.tests.processes import NotReady, free_port, log_in, start_process, stop_process, wait_until_ready
from ops.trading import service
from ops.trading.models import TradingEvent

GUNICORN = ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"]
WORKERS = 2
PASSWORD = "correct horse battery"
# Sample names of the metrics read from the database at scrape time (counters carry
# _total in COLLECTED already); everything else on /metrics is per process.
DATABASE_BACKED = frozenset(COLLECTED)


@dataclass
class Host:
    name: str
    url: str
    multiproc: Path


def host_env(port: int, multiproc: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "two-hosts-test",
        "ALLOWED_HOSTS": "127.0.0.1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(WORKERS),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "METRICS_TOKEN": "",
        # Plain HTTP on the loopback: the test's browser session must get its cookies back.
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
    }


@pytest.fixture
def two_hosts(transactional_db, postgres, tmp_path) -> Iterator[tuple[Host, Host]]:
    started, hosts = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            multiproc = tmp_path / name / "prometheus"
            log = tmp_path / f"gunicorn-{name}.log"
            started.append(start_process(GUNICORN, host_env(port, multiproc), log))
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_ready(f"{url}/readyz", started[-1])
            except NotReady as exc:
                pytest.fail(f"server {name} did not start: {exc}\n" + log.read_text()[-2000:])
            hosts.append(Host(name, url, multiproc))
        yield hosts[0], hosts[1]
    finally:
        for process in started:
            stop_process(process)


@pytest.fixture
def token(transactional_db) -> str:
    return ApiClient.issue("trading-engine")[1]


def post_trade(host: Host, token: str, **overrides) -> requests.Response:
    # A new connection per request: with keep-alive every request could stay on one worker.
    return requests.post(
        f"{host.url}/api/v1/trades",
        json=trade_payload(**overrides),
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=10,
    )


def scrape(host: Host) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"{host.url}/metrics", timeout=10, headers={"Connection": "close"}).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def database_backed(samples: dict[tuple[str, tuple], float]) -> dict[tuple[str, tuple], float]:
    return {key: value for key, value in samples.items() if key[0] in DATABASE_BACKED}


def console_session(host: Host, username: str) -> tuple[requests.Session, str]:
    """Log in through the admin's login page, as a person would; returns the CSRF token."""
    session = log_in(host.url, username, PASSWORD)
    page = session.get(f"{host.url}/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert csrf, "the console page carries the CSRF token of its forms"
    return session, csrf.group(1)


def test_a_halt_in_one_hosts_console_is_refused_by_the_other_on_its_next_request(two_hosts, token):
    a, b = two_hosts
    make_user("otto-operator", "ops_operator")
    assert post_trade(a, token, client_order_id="before-a").status_code == 201
    assert post_trade(b, token, client_order_id="before-b", side="sell").status_code == 201

    session, csrf = console_session(a, "otto-operator")
    answer = session.post(
        f"{a.url}/console/halt",
        data={
            "csrfmiddlewaretoken": csrf,
            "halt-scope_0": "global",
            "halt-scope_1": "",
            "halt-state": "HALTED",
            "halt-reason": "two hosts test",
            "halt-confirm": "HALT",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text[-500:]

    # B has cached nothing: its very next request reads the committed state and refuses,
    # and so does every request after it, on whichever of B's workers answers.
    for n in range(WORKERS * 3):
        refused = post_trade(b, token, client_order_id=f"after-b-{n}")
        assert refused.status_code == 423, refused.text
        assert refused.json()["error"] == "trading_halted"
        assert refused.json()["scope"] == "global"
    assert post_trade(a, token, client_order_id="after-a").status_code == 423
    event = TradingEvent.objects.get()
    assert (event.to_state, event.actor, event.origin) == ("HALTED", "otto-operator", "web")


@pytest.fixture
def recorded_health(transactional_db) -> None:
    now = timezone.now()
    DependencyStatus.objects.create(name="database", status=Health.UP, latency_ms=1.5, checked_at=now)
    DependencyStatus.objects.create(
        name="alpaca", status=Health.DOWN, latency_ms=3000, checked_at=now - timedelta(seconds=5)
    )


def test_both_hosts_export_the_same_database_backed_values(two_hosts, token, recorded_health):
    a, b = two_hosts
    for n in range(3):
        assert post_trade(a, token, client_order_id=f"a-{n}").status_code == 201
    assert post_trade(b, token, client_order_id="b-0", side="sell").status_code == 201
    service.halt(
        "symbol:TSLA",
        reason="two hosts",
        actor=service.Actor.system("test", service.HALT),
        source="rule:two_hosts",
    )
    assert post_trade(b, token, client_order_id="b-tsla", symbol="TSLA").status_code == 423

    on_a, on_b = scrape(a), scrape(b)
    assert database_backed(on_a) == database_backed(on_b)
    shared = database_backed(on_a)
    assert shared[("investiq_trades_total", (("side", "buy"),))] == 3
    assert shared[("investiq_trades_total", (("side", "sell"),))] == 1
    assert shared[("investiq_trading_state", (("scope", "symbol:TSLA"),))] == 2
    assert shared[("investiq_trading_state", (("scope", "global"),))] == 0
    assert (
        shared[
            ("investiq_trading_state_changes_total", (("source", "rule:two_hosts"), ("to_state", "HALTED")))
        ]
        == 1
    )
    assert shared[("investiq_dependency_health", (("name", "database"),))] == 1
    assert shared[("investiq_dependency_health", (("name", "alpaca"),))] == 0
    assert shared[("investiq_metrics_database_up", ())] == 1

    # Per-process values are each host's own: only B refused a trade, and A's request
    # counter has not seen B's requests. Prometheus sums them over the hosts' targets.
    denied = ("investiq_orders_denied_total", (("reason", "trading_halted"),))
    assert (on_a[denied], on_b[denied]) == (0, 1)
    trades_route = (
        "investiq_requests_total",
        (("method", "POST"), ("route", "api/v1/trades"), ("status", "201")),
    )
    assert (on_a[trades_route], on_b[trades_route]) == (3, 1)
