"""schemathesis against the live API (gunicorn on the test database), from its own
/api/v1/openapi.json: no 5xx, every status, content type, header and body as the document
says, schema-invalid input refused with a 4xx, and nothing written by a rejected request.

Bounded and repeatable: a fixed number of examples per operation, derandomized, no
example database, so the same requests go out on every run and machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest
import schemathesis
from django.apps import apps
from django.db import connection
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from ops import openapi
from ops.api.models import ApiClient, Scope
from ops.api.schemas import PRINTABLE_PATTERN
from ops.tests.conftest import database_url
from ops.tests.processes import NotReady, free_port, start_process, stop_process, wait_until_ready
from ops.trading import service

# Per operation and phase. ~60 s for the whole run on the 2-core CI machine.
MAX_EXAMPLES = 40

# Every check schemathesis has (its registry once the OpenAPI checks are imported):
# no 5xx; status, content type, headers and body as documented; input the document
# forbids refused (the document is no looser than the code) and input it allows accepted
# (the code is no stricter: a client generated from it sends nothing refused as
# malformed); a token really required; an undocumented method a 405 with Allow; and the
# stateful ones (use after free, resource availability), which need no links to pass.
CHECKS = checks.CHECKS.get_all()
assert openapi_checks.positive_data_acceptance in CHECKS and len(CHECKS) >= 14, CHECKS


def snapshot() -> dict[str, object]:
    """Everything a request could have written: every row of every ops table, hashed.

    API clients by count only: an authenticated request may refresh last_used_at (at
    most once a minute), which is bookkeeping, not a write of trading data.
    """
    state: dict[str, object] = {}
    with connection.cursor() as cursor:
        for model in apps.get_app_config("ops").get_models():
            table = connection.ops.quote_name(model._meta.db_table)
            if model is ApiClient:
                cursor.execute(f"SELECT count(*) FROM {table}")
                state[model.__name__] = cursor.fetchone()[0]
            else:
                # Raw rows, not model instances: a stored value the ORM cannot convert
                # back must show up as a failure of the server, not of this snapshot.
                cursor.execute(f"SELECT * FROM {table}")
                dump = repr(sorted(map(repr, cursor.fetchall())))
                state[model.__name__] = hashlib.sha256(dump.encode()).hexdigest()
    return state


@pytest.fixture
def live_api(transactional_db, tmp_path):
    """gunicorn serving the test database, a token for each scope, and one halted symbol
    (BRK.B, an example in the document, so the gate's 423 is met too)."""
    tokens = {scope: ApiClient.issue(f"fuzz-{scope}", scopes=scope)[1] for scope in Scope.values}
    service.halt(
        "symbol:BRK.B", reason="fuzz: a halted scope", actor=service.Actor.system("tests", service.HALT)
    )
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "openapi-fuzz",
        "ALLOWED_HOSTS": "127.0.0.1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "METRICS_TOKEN": "",
        "DEBUG": "false",
    }
    server = start_process(["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"], env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ready(f"{url}/healthz", server)
        except NotReady as exc:
            pytest.fail(f"gunicorn did not start: {exc}\n{log.read_text()[-2000:]}")
        yield url, tokens, log
    finally:
        stop_process(server)


# The document as the code builds it; test_openapi.py checks the server serves exactly
# this. (schemathesis's lazy from_fixture loader does not run on pytest 9.)
schema = schemathesis.openapi.from_dict(
    openapi.document(),
    config=schemathesis.Config.from_dict(
        {
            "seed": 20261127,
            # A valid order to the halted symbol is refused by the kill switch (423), not
            # as malformed: valid data "accepted" means any answer but a 400 or a 413.
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2XX", "401", "403", "404", "409", "423", "429"]
                }
            },
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            # Nothing learnt from responses: those hold timestamps and ids, and generation
            # must not depend on them if the same requests are to go out on every run.
            "phases": {
                "stateful": {"enabled": False},
                "examples": {"extra-data-sources": {"responses": False}},
                "coverage": {"extra-data-sources": {"responses": False}},
                "fuzzing": {"extra-data-sources": {"responses": False}, "error-feedback": {"enabled": False}},
            },
        }
    ),
)

seen: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def every_operation_was_both_accepted_and_refused():
    """A fuzz run that only ever got 401s (a wrong token) or only 2xx would prove little:
    each operation that ran must have been answered both 2xx and 4xx."""
    yield
    print("\nstatuses seen:", dict(sorted(seen.items())))
    for label in {label for label, _ in seen}:
        statuses = {status for (other, status) in seen if other == label}
        assert any(200 <= s < 300 for s in statuses), f"{label}: no 2xx in {sorted(statuses)}"
        assert any(400 <= s < 500 for s in statuses), f"{label}: no 4xx in {sorted(statuses)}"
    if any(label == TRADES for label, _ in seen):
        # The gate itself was exercised: trades accepted, and refused by the halted scope.
        assert seen[(TRADES, 201)] >= 3 and seen[(TRADES, 423)] >= 1, dict(seen)


TRADES = "POST /api/v1/trades"


def distinct_order_id(case) -> None:
    """Give a valid trade body an id of its own, derived from the rest of the body.

    schemathesis starts most trade bodies from the document's example ids, so without
    this nearly every trade after the first is a duplicate (409) that stops before the
    gate: the halt's 423 and the accepted path would barely be fuzzed. The new id is as
    long as the old and as valid, so a negative case stays negative for its other
    fields; derived, not random, so every run sends the same requests.
    """
    body = case.body
    if case.operation.label != TRADES or not isinstance(body, dict):
        return
    order_id = body.get("client_order_id")
    if not isinstance(order_id, str) or not re.match(PRINTABLE_PATTERN, order_id):
        return
    rest = json.dumps({k: v for k, v in body.items() if k != "client_order_id"}, sort_keys=True, default=str)
    body["client_order_id"] = hashlib.sha256(rest.encode()).hexdigest()[: len(order_id)]


@schema.parametrize()
@settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_the_live_api_keeps_its_openapi_document(case, live_api):
    url, tokens, log = live_api
    scopes = [
        scope
        for requirement in case.operation.definition.raw.get("security", [])
        for scope in requirement.get("bearerToken", [])
    ]
    headers = {"Authorization": f"Bearer {tokens[scopes[0]]}"} if scopes else None
    distinct_order_id(case)
    before = snapshot()
    response = case.call(base_url=url, headers=headers, timeout=30)
    seen[(case.operation.label, response.status_code)] += 1
    try:
        case.validate_response(
            response, checks=CHECKS, headers=headers, transport_kwargs={"base_url": url, "headers": headers}
        )
    except Exception:
        print(log.read_text()[-3000:])
        raise
    if 400 <= response.status_code < 500:
        assert snapshot() == before, f"{case.operation.label} answered {response.status_code} but wrote"
