"""/metrics in one process: names, types, labels, counting paths, protection, cost."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from ops.records.intake import TradeOrder
from ops.records.models import Trade
from ops.tests.conftest import trade_payload
from ops.trading import service
from ops.trading.gate import submit_trade
from ops.trading.models import State

CONTRACT = {
    "investiq_requests_total": ("counter", {"method", "route", "status"}),
    "investiq_request_duration_milliseconds": ("histogram", {"method", "route"}),
    "investiq_errors_total": ("counter", {"route", "kind"}),
    "investiq_trades_total": ("counter", {"side"}),
    "investiq_analyses_total": ("counter", {"signal"}),
    "investiq_active_connections": ("gauge", set()),
    "investiq_trading_halted": ("gauge", set()),
    "investiq_trading_state": ("gauge", {"scope"}),
    "investiq_orders_denied_total": ("counter", {"reason"}),
    "investiq_trading_state_changes_total": ("counter", {"to_state", "source"}),
    "investiq_dependency_health": ("gauge", {"name"}),
    "investiq_dependency_last_check_timestamp_seconds": ("gauge", {"name"}),
    "investiq_dependency_check_duration_seconds": ("gauge", {"name"}),
}
SYSTEM = service.Actor.system("tests", service.HALT)


def scrape(client: Client | None = None, **headers) -> str:
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    return response.content.decode()


def samples(text: str, metric: str, /) -> dict[tuple, float]:
    """{sorted label items: value} for one sample name."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, metric: str, /, **labels: str) -> float:
    return samples(text, metric).get(tuple(sorted(labels.items())), 0.0)


def test_every_contract_metric_has_help_type_and_its_labels(api):
    from ops.health.service import check_now

    check_now()
    api.post_json("/api/v1/trades", trade_payload())
    service.halt("symbol:AAPL", reason="x", actor=SYSTEM, to_state=State.REDUCING)
    api.post_json("/api/v1/trades", trade_payload(client_order_id="o-2", side="buy"))  # denied
    text = scrape()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, (kind, labels) in CONTRACT.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        assert f"# HELP {name} " in text, name
        assert f"# TYPE {name} {kind}" in text, name
        family = families[base]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)


# django-prometheus's request families that stay (P1, issue 12): name -> (type, labels).
DASHBOARD_FAMILIES = {
    "django_http_requests_total_by_view_transport_method": ("counter", {"view", "transport", "method"}),
    "django_http_responses_total_by_status_view_method": ("counter", {"status", "view", "method"}),
    "django_http_requests_latency_seconds_by_view_method": ("histogram", {"view", "method"}),
    "django_http_exceptions_total_by_type": ("counter", {"type"}),
}


def django_http_families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("django_http_")}


def test_django_prometheus_db_and_cache_families_are_exported(db):
    from django.core.cache import cache

    Client().get("/healthz")
    cache.get("warm")  # the cache families get samples once the backend is used
    text = scrape()
    for name in ("django_db_execute", "django_cache_get"):
        assert f"# TYPE {name}_total counter" in text, name


def test_the_dashboard_request_families_count_a_request_once_with_their_labels(api):
    path = "/api/v1/trading/status?symbol=AAPL"
    api.get_json(path)  # creates the children, so the deltas below start from a sample
    before = scrape()
    assert api.get_json(path).status_code == 200
    assert api.get_json(path).status_code == 200
    after = scrape()
    view = {"view": "api-trading-status", "method": "GET"}
    for sample, labels in (
        ("django_http_requests_total_by_view_transport_method_total", {**view, "transport": "http"}),
        ("django_http_responses_total_by_status_view_method_total", {**view, "status": "200"}),
        ("django_http_requests_latency_seconds_by_view_method_count", view),
        ("django_http_requests_latency_seconds_by_view_method_bucket", {**view, "le": "+Inf"}),
    ):
        assert value(after, sample, **labels) - value(before, sample, **labels) == 2, sample
    families = django_http_families(after)
    for name, (kind, labels) in DASHBOARD_FAMILIES.items():
        if name == "django_http_exceptions_total_by_type":
            continue  # no exception yet in this test; its own test below
        assert families[name].type == kind, name
        assert families[name].samples, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)


def test_an_exception_is_counted_by_type_and_its_latency_observed_once(db, settings):
    settings.ROOT_URLCONF = "ops.tests.urls_for_errors"
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    client = Client(raise_request_exception=False)
    view = {"view": "ops.tests.urls_for_errors.explode", "method": "GET"}
    latency = "django_http_requests_latency_seconds_by_view_method_count"
    before = scrape()
    assert client.get("/api/v1/explode").status_code == 500
    assert client.get("/api/v1/explode").status_code == 500
    after = scrape()

    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert delta("django_http_exceptions_total_by_type_total", type="RuntimeError") == 2
    assert delta("django_http_responses_total_by_status_view_method_total", status="500", **view) == 2
    # Upstream observes a raising request in process_exception and again in
    # process_response; ours once.
    assert delta(latency, **view) == 2
    family = django_http_families(after)["django_http_exceptions_total_by_type"]
    assert family.type == "counter"
    assert {frozenset(sample.labels) for sample in family.samples} == {frozenset({"type"})}


def test_only_the_dashboard_request_families_are_exported(api, admin_client_logged_in, db, settings):
    # Traffic that would write every dropped family upstream: a body (body sizes), a
    # template response (template names), an AJAX header, an exception, a 404.
    api.post_json("/api/v1/trades", trade_payload())
    api.get_json("/api/v1/trading/status", HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    admin_client_logged_in.get("/admin/")
    Client().get("/no/such/page")
    settings.ROOT_URLCONF = "ops.tests.urls_for_errors"
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    Client(raise_request_exception=False).get("/api/v1/explode")
    text = scrape()
    assert set(django_http_families(text)) == set(DASHBOARD_FAMILIES)
    for dropped in (
        "django_http_requests_before_middlewares_total",
        "django_http_requests_latency_including_middlewares_seconds",
        "django_http_requests_unknown_latency_total",
        "django_http_requests_total_by_method_total",
        "django_http_requests_body_total_bytes",
        "django_http_responses_total_by_status_total",
        "django_http_responses_body_total_bytes",
        "django_http_responses_total_by_templatename_total",
        "django_http_ajax_requests_total",
        "django_http_exceptions_total_by_view_total",
    ):
        assert dropped not in text, dropped


def test_the_latency_histogram_has_an_edge_at_the_1000ms_threshold(db):
    Client().get("/healthz")
    les = {dict(k)["le"] for k in samples(scrape(), "investiq_request_duration_milliseconds_bucket")}
    assert {"500.0", "1000.0", "2500.0", "+Inf"} <= les


def test_a_thousand_unknown_paths_add_exactly_one_route_value(db):
    client = Client()
    before = {dict(k)["route"] for k in samples(scrape(), "investiq_requests_total")}
    for n in range(1000):
        client.get(f"/scanner/probe-{n}/wp-login.php")
    routes = {dict(k)["route"] for k in samples(scrape(), "investiq_requests_total")}
    assert routes - before <= {"<unmatched>"} and "<unmatched>" in routes
    assert value(scrape(), "investiq_requests_total", method="GET", route="<unmatched>", status="404") >= 1000


def test_routes_are_url_patterns_not_paths(admin_client_logged_in):
    trade = Trade.objects.create(client_order_id="a", symbol="AAPL", side="buy", quantity=1, price=1)
    admin_client_logged_in.get(f"/admin/ops/trade/{trade.pk}/change/")
    routes = {dict(k)["route"] for k in samples(scrape(), "investiq_requests_total")}
    # The raw path (…/trade/<pk>/change/) must not be a label; "str(pk) in route" would
    # also match the "1" of "api/v1" whenever the pk is 1 (a fresh SQLite database).
    assert not any(f"/{trade.pk}/" in route for route in routes)
    assert any("<path:object_id>/change/" in route for route in routes)


def test_metrics_need_the_token_when_one_is_set(db, settings):
    settings.METRICS_TOKEN = "s3cret-metrics"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"}).status_code == 200


def test_trades_from_every_creation_path_are_counted(api, admin_client_logged_in):
    before_buy = value(scrape(), "investiq_trades_total", side="buy")
    api.post_json("/api/v1/trades", trade_payload(client_order_id="api-1"))  # API
    admin_client_logged_in.post(
        "/admin/ops/trade/add/",
        {  # admin
            "client_order_id": "adm-1",
            "symbol": "MSFT",
            "side": "buy",
            "quantity": "1",
            "price": "1",
            "strategy": "default",
            "executed_at_0": "2026-11-27",
            "executed_at_1": "10:00:00",
        },
    )
    submit_trade(TradeOrder("shell-1", "AAPL", "buy", 1, 1))  # a shell, through the gate
    Trade.objects.create(client_order_id="orm-1", symbol="AAPL", side="buy", quantity=1, price=1)  # raw ORM
    Trade.objects.bulk_create(
        [
            Trade(client_order_id=f"bulk-{n}", symbol="AAPL", side="sell", quantity=1, price=1)
            for n in range(5)
        ]
    )
    text = scrape()
    assert value(text, "investiq_trades_total", side="buy") == before_buy + 4
    assert value(text, "investiq_trades_total", side="sell") == 5


def test_seed_demo_trades_are_counted(db):
    call_command("seed_demo", "--force", stdout=open("/dev/null", "w"))  # noqa: SIM115
    text = scrape()
    counted = value(text, "investiq_trades_total", side="buy") + value(
        text, "investiq_trades_total", side="sell"
    )
    assert counted == Trade.objects.count() == 180
    assert sum(samples(text, "investiq_analyses_total").values()) == 120


def test_counters_never_go_backwards_when_rows_are_deleted(db):
    submit_trade(TradeOrder("t-1", "AAPL", "buy", 1, 1))
    Trade.objects.all().delete()
    assert value(scrape(), "investiq_trades_total", side="buy") == 1


def test_a_rolled_back_trade_is_not_counted(db):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        submit_trade(TradeOrder("t-1", "AAPL", "buy", 1, 1))
        raise RuntimeError("rolled back")
    assert value(scrape(), "investiq_trades_total", side="buy") == 0


def test_a_scrape_costs_the_same_queries_at_any_table_size(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_per_scrape() -> int:
        with CaptureQueriesContext(connection) as captured:
            scrape()
        assert not [q for q in captured.captured_queries if "ops_trade" in q["sql"]], "scrape read the trades"
        return len(captured.captured_queries)

    small = queries_per_scrape()
    Trade.objects.bulk_create(
        [Trade(client_order_id=f"b-{n}", symbol="AAPL", side="buy", quantity=1, price=1) for n in range(2000)]
    )
    assert queries_per_scrape() == small


def test_the_halt_gauges_follow_the_state(db):
    assert value(scrape(), "investiq_trading_halted") == 0
    service.halt("global", reason="x", actor=SYSTEM, source="rule:broker_unreachable")
    service.halt("strategy:pairs", reason="x", actor=SYSTEM, to_state=State.REDUCING)
    text = scrape()
    assert value(text, "investiq_trading_halted") == 1
    assert value(text, "investiq_trading_state", scope="global") == 2
    assert value(text, "investiq_trading_state", scope="strategy:pairs") == 1
    assert (
        value(
            text, "investiq_trading_state_changes_total", to_state="HALTED", source="rule:broker_unreachable"
        )
        == 1
    )
    assert value(text, "investiq_trading_state_changes_total", to_state="REDUCING", source="manual") == 1


def test_gate_refusals_are_counted_by_reason(api):
    service.halt("global", reason="x", actor=SYSTEM)
    before = value(scrape(), "investiq_orders_denied_total", reason="trading_halted")
    assert api.post_json("/api/v1/trades", trade_payload()).status_code == 423
    assert value(scrape(), "investiq_orders_denied_total", reason="trading_halted") == before + 1


def test_exceptions_and_5xx_are_counted_once(db, settings):
    settings.ROOT_URLCONF = "ops.tests.urls_for_errors"
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    client = Client(raise_request_exception=False)
    before = value(scrape(), "investiq_errors_total", route="explode/<int:n>", kind="exception")
    assert client.get("/explode/1").status_code == 500
    assert client.get("/explode/2").status_code == 500
    text = scrape()
    assert value(text, "investiq_errors_total", route="explode/<int:n>", kind="exception") == before + 2
    assert value(text, "investiq_errors_total", route="explode/<int:n>", kind="status_5xx") == 0


def test_a_scrape_still_answers_when_the_database_is_down(database_down):
    text = scrape()
    assert value(text, "investiq_metrics_database_up") == 0
    assert "investiq_requests_total" in text


def test_an_unset_metrics_token_outside_debug_is_reported():
    from ops.checks import check_metrics_token

    assert [w.id for w in check_metrics_token(None)] == ["ops.W003"]


def test_active_connections_is_zero_when_idle(db):
    Client().get("/healthz")
    assert value(scrape(), "investiq_active_connections") == 0


def test_made_up_http_methods_are_refused_before_any_metric(db):
    before = scrape()
    for method in ("FOO", "BAR", "PROPFIND"):
        assert Client().generic(method, "/healthz").status_code == 405
    after = scrape()
    assert len(list(text_string_to_metric_families(after))) == len(
        list(text_string_to_metric_families(before))
    )
    assert "FOO" not in after and "PROPFIND" not in after


def test_a_404_raised_by_a_view_is_not_an_error(admin_client_logged_in):
    before = sum(samples(scrape(), "investiq_errors_total").values())
    assert admin_client_logged_in.get("/admin/ops/trade/999999/change/").status_code in (302, 404)
    assert admin_client_logged_in.get("/admin/nonexistent/zzz/").status_code == 404
    assert sum(samples(scrape(), "investiq_errors_total").values()) == before


def test_denial_and_error_families_exist_before_the_first_event(db):
    # (In-process counters accumulate over the test session, so check presence, not 0;
    # the gunicorn test checks a fresh process.)
    text = scrape()
    reasons = {dict(k)["reason"] for k in samples(text, "investiq_orders_denied_total")}
    assert reasons >= {"trading_halted", "trading_reducing", "trading_state_unavailable"}
    assert samples(text, "investiq_errors_total")


def denied(reason: str) -> float:
    # The web process's own counter, read without a scrape (which needs the database).
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("investiq_orders_denied_total", {"reason": reason}) or 0


def test_a_refusal_is_counted_once_whatever_failed_first(database_down_with_token):
    """The token look-up (on Postgres, in the gate's own statement) fails: still the
    gate's 503, still counted."""
    before = denied("trading_state_unavailable")
    response = Client().post(
        "/api/v1/trades",
        trade_payload(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {database_down_with_token}"},
    )
    assert response.status_code == 503 and response.json()["error"] == "trading_state_unavailable"
    assert denied("trading_state_unavailable") == before + 1


def test_an_unreadable_state_is_counted_once(api):
    from ops.tests.conftest import unreadable_trading_state

    before = denied("trading_state_unavailable")
    with unreadable_trading_state():
        assert api.post_json("/api/v1/trades", trade_payload()).status_code == 503
    assert denied("trading_state_unavailable") == before + 1


def test_an_order_turned_away_for_want_of_a_connection_is_counted(api, settings):
    """Postgres with its pool: every slot the engine may use is taken (here by this very
    thread), so the order waits DB_POOL_TIMEOUT and gets the gate's 503, counted."""
    from django.db import connection

    from ops.api.admission import engine_slot

    if not connection.settings_dict["OPTIONS"].get("pool"):
        pytest.skip("no pool: the embedded default (SQLite) has no connection slots")
    settings.DB_POOL_SIZE, settings.DB_POOL_RESERVE, settings.DB_POOL_TIMEOUT = 2, 1, 0.05
    before = denied("trading_state_unavailable")
    with engine_slot():
        response = api.post_json("/api/v1/trades", trade_payload())
    assert response.status_code == 503 and response.json()["error"] == "trading_state_unavailable"
    assert "saturated" in response.json()["detail"] and response["Retry-After"] == "1"
    assert denied("trading_state_unavailable") == before + 1
    assert not Trade.objects.exists()
