"""bench/gate_cost.py's bare-insert view exists only under its own settings module."""

from __future__ import annotations

import pytest
from django.urls import Resolver404, resolve

from ops.records.models import Trade
from ops.tests.conftest import trade_payload


def test_the_bare_insert_view_is_not_routed_by_the_production_urls(client, db):
    with pytest.raises(Resolver404):
        resolve("/bench/bare-insert")
    response = client.post("/bench/bare-insert", trade_payload(), content_type="application/json")
    assert response.status_code == 404
    assert not Trade.objects.exists()


def test_only_the_bench_settings_route_it():
    from bench import gate_settings
    from bench.gate_urls import bare_insert

    assert resolve("/bench/bare-insert", urlconf=gate_settings.ROOT_URLCONF).func is bare_insert
    # The production URLs are the bench's too: same middleware, same API, plus one view.
    assert resolve("/api/v1/trades", urlconf=gate_settings.ROOT_URLCONF).url_name == "api-trades"


def test_no_module_of_the_app_or_the_project_imports_the_benchmarks():
    from ops.tests.test_layout import ROOT, imports_any, relative, source_modules

    modules = [*source_modules(), *sorted((ROOT / "investiq").rglob("*.py"))]
    assert len(modules) > 20  # the check sees the code it must
    importing = {relative(path): imports_any(path, ("bench",)) for path in modules}
    assert {path: names for path, names in importing.items() if names} == {}
