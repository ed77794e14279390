from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.admin.templatetags import admin_list
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ops import admin_dates
from ops.api.models import ApiClient
from ops.health.models import DependencyCheck, Health
from ops.records.intake import TradeOrder
from ops.records.models import Analysis, Trade

CHANGELIST = "/admin/ops/trade/"


def unbounded_counts(queries: list[dict]) -> list[str]:
    """COUNT queries that are not capped by a LIMIT inside them."""
    return [q["sql"] for q in queries if re.search(r"COUNT\(", q["sql"], re.I) and "LIMIT" not in q["sql"]]


# One trade a second back from a fixed noon, never from now(): the newest day then holds
# 43,200 of them, more than the paginator's cap, at any hour the suite runs. From now(),
# soon after midnight UTC the newest day held fewer than the cap, its capped count had
# to read every match, and the planner sometimes chose a scan of all 100,000 rows.
BULK_NEWEST = datetime(2026, 3, 15, 12, tzinfo=UTC)


@pytest.fixture
def hundred_thousand_trades(postgres):
    with connection.cursor() as cursor:
        # The app's 5 s statement_timeout is for requests; a 100k-row fixture on a busy
        # CI machine may need longer.
        cursor.execute("SET LOCAL statement_timeout = 0")
        cursor.execute(
            """
            INSERT INTO ops_trade (client_order_id, symbol, side, quantity, price, strategy,
                                   executed_at, created_at)
            SELECT 'bulk-' || n, (ARRAY['AAPL','MSFT','NVDA','TSLA'])[1 + n %% 4],
                   CASE WHEN n %% 2 = 0 THEN 'buy' ELSE 'sell' END, 1 + n %% 100, 100 + n %% 50,
                   'default', %s - (n || ' seconds')::interval, now()
            FROM generate_series(1, 100000) AS n
            """,
            [BULK_NEWEST],
        )
        # What autovacuum does in production; the paginator reads the planner's estimate.
        cursor.execute("ANALYZE ops_trade")


def test_the_trade_changelist_never_counts_the_whole_table(admin_client_logged_in, hundred_thousand_trades):
    with CaptureQueriesContext(connection) as captured:
        response = admin_client_logged_in.get(CHANGELIST)
    assert response.status_code == 200
    assert unbounded_counts(captured.captured_queries) == []
    assert response.context["cl"].result_count > 90_000  # the estimate, close to 100k
    assert len(response.context["cl"].result_list) == 50


@pytest.mark.parametrize(
    ("query", "matching"),
    [
        ("?side__exact=buy", {"side": "buy"}),
        ("?q=AAPL", {"symbol": "AAPL"}),
        ("?q=bulk-77", {"client_order_id": "bulk-77"}),
        ("?executed_at__gte=2000-01-01T00:00:00%2B00:00", {}),
    ],
)
def test_filtered_changelists_count_at_most_a_capped_number_of_rows(
    admin_client_logged_in, hundred_thousand_trades, query, matching
):
    with CaptureQueriesContext(connection) as captured:
        response = admin_client_logged_in.get(CHANGELIST + query)
    assert response.status_code == 200
    assert unbounded_counts(captured.captured_queries) == []
    # The true count when small, the cap when not: never 0 for a filter that matches.
    assert response.context["cl"].result_count == min(Trade.objects.filter(**matching).count(), 10_001)


def trade_rows_read(sql: str) -> int:
    """Rows of ops_trade that Postgres really reads for `sql` (EXPLAIN ANALYZE, for every
    scan node on the table: the rows it returned plus those its filter or index recheck
    threw away, times loops): a count, not a time."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        (plan,) = cursor.fetchone()[0]

    def walk(node: dict) -> int:
        own = 0
        if node.get("Relation Name") == "ops_trade":
            read = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            read += node.get("Rows Removed by Index Recheck", 0)
            own = read * node["Actual Loops"]
        return own + sum(walk(child) for child in node.get("Plans", ()))

    return walk(plan["Plan"])


HUNDRED_THOUSAND = 100_000
CAP = 10_001  # the paginator's capped count


def read_until_the_cap(matching: float) -> int:
    """Rows a scan reads to find the capped count's CAP matches when `matching` of the
    rows match, spread evenly (the fixture interleaves sides and symbols row by row), plus
    10% for the planner's choices. A scan of the whole table reads HUNDRED_THOUSAND."""
    return int(CAP / matching * 1.1)


# The most rows of ops_trade any one query of the page may read, per view: what the
# planner must read for it, with a margin. Indexed views read at most the capped count
# (the page itself, 50 rows by the executed_at index). A filter on an unindexed column
# (side: half the rows) or a search the planner answers by a scan (symbol: a quarter)
# reads until it has found the cap's worth of matches, and never more on a bigger table.
MOST_ROWS_READ = {
    "": CAP,
    "?executed_at__year={year}": CAP,
    "?executed_at__year={year}&executed_at__month={month}": CAP,
    "?executed_at__year={year}&executed_at__month={month}&executed_at__day={day}": CAP,
    "?_facets=1": CAP,
    "?side__exact=sell": read_until_the_cap(matching=1 / 2),  # 22,002
    "?_facets=1&side__exact=buy": read_until_the_cap(matching=1 / 2),
    "?q=MSFT": read_until_the_cap(matching=1 / 4),  # 44,004
}


def test_no_trade_changelist_query_reads_more_rows_than_its_plan_needs(
    admin_client_logged_in, hundred_thousand_trades
):
    assert Trade.objects.count() == HUNDRED_THOUSAND
    newest = Trade.objects.first().executed_at
    too_many = {}
    for query, most in MOST_ROWS_READ.items():
        url = CHANGELIST + query.format(year=newest.year, month=newest.month, day=newest.day)
        with CaptureQueriesContext(connection) as captured:
            response = admin_client_logged_in.get(url)
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == 50
        on_trades = [q["sql"] for q in captured.captured_queries if '"ops_trade"' in q["sql"]]
        assert on_trades
        # The date hierarchy's DISTINCT date_trunc, or a facet COUNT, would read them all.
        too_many.update({(query, sql): rows for sql in on_trades if (rows := trade_rows_read(sql)) > most})
    assert too_many == {}


def trades_spread_over(count: int, start: datetime, end: datetime) -> None:
    step = (end - start) / count
    Trade.objects.bulk_create(
        Trade(
            client_order_id=f"spread-{n}",
            symbol="AAPL",
            side="buy" if n % 2 else "sell",
            quantity=1,
            price=1,
            executed_at=start + n * step,
        )
        for n in range(count)
    )


@pytest.mark.parametrize(
    "query",
    ["", "?executed_at__year=2026", "?executed_at__year=2026&executed_at__month=3", "?side__exact=buy"],
)
def test_the_trade_changelist_runs_the_same_queries_at_fifty_and_at_two_thousand_trades(
    admin_client_logged_in, query
):
    """Over the same days, more rows cost no more statements, and none of them is the
    date hierarchy's scan of every row (DISTINCT over the truncated dates)."""
    start, end = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC)
    statements = []
    for count in (50, 2_000):
        Trade.objects.all().delete()
        trades_spread_over(count, start, end)
        with CaptureQueriesContext(connection) as captured:
            response = admin_client_logged_in.get(CHANGELIST + query)
        assert response.status_code == 200
        assert [q["sql"] for q in captured.captured_queries if "DISTINCT" in q["sql"].upper()] == []
        statements.append(len(captured.captured_queries))
    assert statements[0] == statements[1]


@pytest.fixture
def trades_across_years(db) -> None:
    for n, executed_at in enumerate(
        [
            datetime(2024, 12, 31, 23, 30, tzinfo=UTC),  # 2025-01-01 in Asia/Tokyo
            datetime(2025, 1, 2, 12, 0, tzinfo=UTC),
            datetime(2025, 3, 1, 2, 0, tzinfo=UTC),  # 2025-02-28 in America/New_York
            datetime(2025, 3, 31, 23, 59, tzinfo=UTC),
            datetime(2026, 2, 28, 0, 0, tzinfo=UTC),
        ]
    ):
        Trade.objects.create(
            client_order_id=f"y-{n}", symbol="MSFT", side="buy", quantity=1, price=1, executed_at=executed_at
        )


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?executed_at__year=2025",
        "?executed_at__year=2025&executed_at__month=3",
        "?executed_at__year=2025&executed_at__month=3&executed_at__day=1",
        "?executed_at__year=2030",
        "?side__exact=sell",
    ],
)
def test_the_probed_date_hierarchy_shows_what_djangos_own_shows(
    admin_client_logged_in, trades_across_years, settings, query
):
    for zone in ("UTC", "America/New_York", "Asia/Tokyo"):
        settings.TIME_ZONE = zone
        response = admin_client_logged_in.get(CHANGELIST + query)
        assert response.status_code == 200
        cl = response.context["cl"]
        with timezone.override(zone):
            probed = admin_dates.date_hierarchy(cl)
            djangos = admin_list.date_hierarchy(cl)
        assert probed == djangos, zone
        page = response.content.decode().replace("&amp;", "&")
        assert all(choice["link"] in page for choice in probed["choices"] if "link" in choice)


def test_the_date_hierarchy_lists_one_link_per_year_with_trades(admin_client_logged_in, trades_across_years):
    page = admin_client_logged_in.get(CHANGELIST).content.decode()
    assert re.findall(r'href="\?executed_at__year=(\d+)"', page) == ["2024", "2025", "2026"]


def test_the_analysis_changelist_probes_its_date_hierarchy_too(admin_client_logged_in):
    for day in (1, 2):
        Analysis.objects.create(
            symbol="AAPL",
            signal="buy",
            confidence="0.5",
            model_version="v1",
            analyzed_at=datetime(2026, 3, day, tzinfo=UTC),
        )
    with CaptureQueriesContext(connection) as captured:
        page = admin_client_logged_in.get("/admin/ops/analysis/").content.decode()
    assert [q["sql"] for q in captured.captured_queries if "DISTINCT" in q["sql"].upper()] == []
    assert "analyzed_at__day=1" in page and "analyzed_at__day=2" in page


def test_the_dependency_history_probes_its_date_hierarchy_too(admin_client_logged_in):
    for day in (1, 2):
        DependencyCheck.objects.create(
            name="alpaca", status=Health.UP, latency_ms=3, checked_at=datetime(2026, 3, day, tzinfo=UTC)
        )
    with CaptureQueriesContext(connection) as captured:
        page = admin_client_logged_in.get("/admin/ops/dependencycheck/").content.decode()
    assert [q["sql"] for q in captured.captured_queries if "DISTINCT" in q["sql"].upper()] == []
    assert "checked_at__day=1" in page and "checked_at__day=2" in page
    assert "?name__exact=ml_service" in page  # every dependency, from the probes, not a scan
    for name, count in (("alpaca", 2), ("redis", 0)):
        filtered = admin_client_logged_in.get(f"/admin/ops/dependencycheck/?name__exact={name}")
        assert filtered.context["cl"].result_count == count


def test_search_is_an_exact_symbol_or_order_id_match(admin_client_logged_in):
    Trade.objects.create(client_order_id="abc-1", symbol="AAPL", side="buy", quantity=1, price=1)
    Trade.objects.create(client_order_id="abc-2", symbol="AAP", side="buy", quantity=1, price=1)
    assert admin_client_logged_in.get(CHANGELIST + "?q=aapl").context["cl"].result_count == 1
    assert admin_client_logged_in.get(CHANGELIST + "?q=abc-2").context["cl"].result_count == 1


def test_a_trade_added_in_the_admin_is_recorded_with_its_position(admin_client_logged_in):
    response = admin_client_logged_in.post(
        "/admin/ops/trade/add/",
        {
            "client_order_id": "phone-1",
            "symbol": "MSFT",
            "side": "sell",
            "quantity": "3",
            "price": "415",
            "strategy": "default",
            "executed_at_0": "2026-11-27",
            "executed_at_1": "15:00:00",
        },
    )
    assert response.status_code == 302, response.content
    trade = Trade.objects.get()
    assert (trade.client_order_id, trade.quantity) == ("phone-1", Decimal(3))


def test_a_saved_trade_cannot_be_edited_or_deleted(admin_client_logged_in):
    trade = Trade.objects.create(client_order_id="x-1", symbol="AAPL", side="buy", quantity=1, price=1)
    page = admin_client_logged_in.get(f"/admin/ops/trade/{trade.pk}/change/")
    assert page.status_code == 200
    assert set(page.context["adminform"].form.fields) == set()  # every field read-only
    admin_client_logged_in.post(f"/admin/ops/trade/{trade.pk}/change/", {"quantity": "99"})
    trade.refresh_from_db()
    assert trade.quantity == 1
    assert admin_client_logged_in.get(f"/admin/ops/trade/{trade.pk}/delete/").status_code == 403


def test_the_revoke_action_revokes_tokens(admin_client_logged_in):
    client, token = ApiClient.issue("engine")
    admin_client_logged_in.post(
        "/admin/ops/apiclient/", {"action": "revoke", "_selected_action": [client.pk]}
    )
    assert ApiClient.objects.for_token(token) is None


def test_an_id_taken_during_the_admin_save_is_an_error_message_not_a_500(admin_client_logged_in, monkeypatch):
    from ops.records.intake import ConflictingOrder
    from ops.trading import gate

    def taken(order):
        raise ConflictingOrder(Trade(client_order_id=order.client_order_id))

    monkeypatch.setattr(gate, "submit_trade", taken)
    response = admin_client_logged_in.post(
        "/admin/ops/trade/add/",
        {
            "client_order_id": "race-1",
            "symbol": "MSFT",
            "side": "sell",
            "quantity": "3",
            "price": "415",
            "strategy": "default",
            "executed_at_0": "2026-11-27",
            "executed_at_1": "09:00:00",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert any("Not added" in str(m) for m in response.context["messages"])
    assert not Trade.objects.exists()


# --- the pre-trade gate holds in the admin -------------------------------------------------

PHONE_FILL = {
    "client_order_id": "phone-2",
    "symbol": "AAPL",
    "side": "buy",
    "quantity": "5",
    "price": "228",
    "strategy": "momentum",
    "executed_at_0": "2026-11-27",
    "executed_at_1": "15:00:00",
}


def halt_for_tests(scope: str = "global", to_state: str = "HALTED") -> None:
    from ops.trading import service

    actor = service.Actor.system("tests", service.HALT)
    service.halt(scope, reason="runaway strategy", actor=actor, to_state=to_state)


def test_the_add_page_says_trades_pass_the_gate(admin_client_logged_in):
    assert b"passes the pre-trade gate" in admin_client_logged_in.get("/admin/ops/trade/add/").content


def test_adding_a_trade_while_halted_is_refused_on_the_form_and_writes_nothing(admin_client_logged_in):
    halt_for_tests()
    response = admin_client_logged_in.post("/admin/ops/trade/add/", PHONE_FILL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Not added: Trading is halted for global: runaway strategy" in page
    assert 'value="phone-2"' in page  # the form keeps what was typed
    assert not Trade.objects.exists()


def test_adding_a_trade_that_grows_a_reducing_position_is_refused(admin_client_logged_in):
    halt_for_tests("strategy:momentum", to_state="REDUCING")
    response = admin_client_logged_in.post("/admin/ops/trade/add/", PHONE_FILL)
    assert response.status_code == 200 and "reducing-only" in response.content.decode()
    assert not Trade.objects.exists()


def test_a_halt_between_the_form_check_and_the_save_is_an_error_message(admin_client_logged_in, monkeypatch):
    from ops.trading import gate

    real_submit = gate.submit_trade

    def halted_meanwhile(order):
        halt_for_tests()  # committed by another person between validation and save
        return real_submit(order)

    monkeypatch.setattr(gate, "submit_trade", halted_meanwhile)
    response = admin_client_logged_in.post("/admin/ops/trade/add/", PHONE_FILL, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert any("Not added: Trading is halted" in m for m in shown), shown
    assert not Trade.objects.exists()


def test_adding_a_trade_when_the_state_cannot_be_read_is_refused(admin_client_logged_in, monkeypatch):
    from ops.trading import gate

    def unreadable(symbol, strategy):
        raise gate.TradingStateUnavailable("database gone")

    monkeypatch.setattr(gate, "effective_state", unreadable)
    response = admin_client_logged_in.post("/admin/ops/trade/add/", PHONE_FILL)
    assert response.status_code == 200 and "fails closed" in response.content.decode()
    assert not Trade.objects.exists()


# --- booking a fill that already happened at the broker --------------------------------

BOOK_FILL = "/admin/ops/trade/book-fill/"


def fill(**overrides) -> dict:
    data = {
        "client_order_id": "alpaca-fill-1",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "5",
        "price": "228.10",
        "strategy": "momentum",
        "executed_at": "2026-11-27 09:59:58",
        "reason": "filled at Alpaca 09:59:58, before the halt reached the engine",
    }
    data.update(overrides)
    return data


@pytest.fixture
def halted(db):
    from ops.trading import service

    service.halt("global", reason="broker outage", actor=service.Actor.system("tests", service.HALT))


def logged_in(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_a_supervisor_books_a_broker_fill_while_halted_and_it_is_audited(halted, supervisor):
    from ops.records.models import Position
    from ops.trading.models import FillBooking

    page = logged_in(supervisor).get(BOOK_FILL)
    assert page.status_code == 200 and "bypasses the kill switch on purpose" in page.content.decode()
    response = logged_in(supervisor).post(BOOK_FILL, fill())
    assert response.status_code == 302
    trade = Trade.objects.get(client_order_id="alpaca-fill-1")
    booking = FillBooking.objects.get(trade=trade)
    assert (booking.actor, booking.origin) == ("sam-supervisor", "admin")
    assert (booking.state_at_booking, booking.scope_at_booking) == ("HALTED", "global")
    assert "before the halt" in booking.reason
    assert Position.objects.get(strategy="momentum", symbol="AAPL").quantity == 5


def test_an_operator_cannot_book_a_fill_and_nothing_is_written(halted, operator):
    assert logged_in(operator).get(BOOK_FILL).status_code == 403
    assert logged_in(operator).post(BOOK_FILL, fill()).status_code == 403
    assert not Trade.objects.exists()


def test_a_superuser_without_the_role_cannot_book_a_fill(halted, admin_client_logged_in):
    assert admin_client_logged_in.post(BOOK_FILL, fill()).status_code == 403
    assert not Trade.objects.exists()


def test_a_fill_needs_a_reason(halted, supervisor):
    response = logged_in(supervisor).post(BOOK_FILL, fill(reason="  "))
    assert response.status_code == 200 and not Trade.objects.exists()


def test_booking_is_idempotent_and_never_double_books(halted, supervisor):
    from ops.trading import gate, service
    from ops.trading.models import FillBooking

    order = TradeOrder(
        client_order_id="alpaca-fill-2", symbol="AAPL", side="sell", quantity=Decimal(1), price=Decimal(1)
    )
    actor = service.Actor.of(supervisor)
    first, created = gate.book_fill(order, actor=actor, reason="fill from the stream")
    again, created_again = gate.book_fill(order, actor=actor, reason="fill from the stream")
    assert created and not created_again and first.pk == again.pk
    assert FillBooking.objects.count() == 1


def test_the_trade_list_links_to_booking_a_fill(admin_client_logged_in):
    assert BOOK_FILL in admin_client_logged_in.get(CHANGELIST).content.decode()


@pytest.mark.parametrize("role", ["viewer", "operator", "supervisor"])
def test_every_ops_role_sees_what_an_incident_sends_it_to(db, request, role):
    user = request.getfixturevalue(role)
    for page in ("alert", "brokercancellation", "dependencystatus", "fillbooking", "tradingevent", "trade"):
        assert logged_in(user).get(f"/admin/ops/{page}/").status_code == 200, page


LONG_PRICE = "123456789012.12345678"  # 20 significant digits: SQLite would keep 15


def test_the_admin_forms_refuse_an_amount_sqlite_would_alter_like_the_api(admin_client_logged_in):
    from django.db import connection

    from ops.records.models import Analysis
    from ops.trading.admin import BookFillForm

    response = admin_client_logged_in.post("/admin/ops/trade/add/", {**PHONE_FILL, "price": LONG_PRICE})
    book = BookFillForm(data={**PHONE_FILL, "price": LONG_PRICE, "reason": "broker fill 7"})
    analysis = admin_client_logged_in.post(
        "/admin/ops/analysis/add/",
        {
            "symbol": "AAPL",
            "signal": "buy",
            "confidence": "0.5",
            "model_version": "m1",
            "price": LONG_PRICE,
            "analyzed_at_0": "2026-11-27",
            "analyzed_at_1": "15:00:00",
        },
    )
    if connection.vendor == "sqlite":
        # Stored, it would read back altered, and past the column's precision it would
        # break the analysis list for everyone (a 500 no one could delete away).
        assert response.status_code == 200 and analysis.status_code == 200
        assert "keeps 15 significant digits" in response.content.decode()
        assert "keeps 15 significant digits" in analysis.content.decode()
        assert not Trade.objects.exists() and not Analysis.objects.exists()
        assert "price" in book.errors
    else:
        assert Trade.objects.get().price == Decimal(LONG_PRICE)
        assert Analysis.objects.get().price == Decimal(LONG_PRICE)
        assert "price" not in book.errors
    assert admin_client_logged_in.get("/admin/ops/analysis/").status_code == 200
