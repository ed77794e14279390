"""The kill-switch drill (ops/drill): its stages, its record, and that real trading is never touched.

These run on the embedded default's terms (DRILL_ALERTS off: the alert stages are
skipped, saying why) on whichever database the run uses; the drill through a real
Prometheus and Alertmanager is in test_drill_live.py.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import unittest.mock
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connections
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ops.alerts.models import Alert, AlertStatus
from ops.api.models import ApiClient
from ops.drill import service as drill_service
from ops.drill.models import DrillRun, Outcome
from ops.records.models import Position, Trade
from ops.tests.conftest import ApiTestClient, trade_payload
from ops.tests.test_settings import run_manage
from ops.trading import service
from ops.trading.errors import InvalidTransition, NotPermitted
from ops.trading.models import DRILL_SCOPE, State, TradingEvent, TradingState

STAGES = [
    "halt",
    "gate_refuses",
    "metric_shows_halt",
    "alert_arrives",
    "resume",
    "metric_shows_resume",
    "alert_resolves",
]


def drill_json() -> dict:
    out = io.StringIO()
    call_command("drill", "--json", stdout=out)
    return json.loads(out.getvalue())


def outcomes(record: dict) -> dict[str, str]:
    return {stage["name"]: stage["outcome"] for stage in record["stages"]}


def metrics(client: Client) -> dict[str, float]:
    text = client.get("/metrics").content.decode()
    return {
        sample.name + (json.dumps(sample.labels, sort_keys=True) if sample.labels else ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_drill_passes_the_stages_that_exist_and_says_which_it_skipped_and_why(db):
    record = drill_json()

    assert record["outcome"] == "passed"
    assert [stage["name"] for stage in record["stages"]] == STAGES
    assert outcomes(record) == {
        "halt": "passed",
        "gate_refuses": "passed",
        "metric_shows_halt": "passed",
        "alert_arrives": "skipped",
        "resume": "passed",
        "metric_shows_resume": "passed",
        "alert_resolves": "skipped",
    }
    skipped = {s["name"]: s["detail"] for s in record["stages"] if s["outcome"] == "skipped"}
    assert all("DRILL_ALERTS is off" in why for why in skipped.values())
    gate = next(s for s in record["stages"] if s["name"] == "gate_refuses")
    assert gate["observed"] | {"client_order_id": "-"} == {
        "client_order_id": "-",
        "written": False,
        "status": 423,
        "error": "trading_halted",
        "scope": DRILL_SCOPE,
    }
    for stage in record["stages"]:
        assert stage["started"] <= stage["ended"] and stage["duration_s"] >= 0
    # Stored as printed, and the drill scope ends ACTIVE with two audited drill events.
    assert DrillRun.objects.get().as_json() == record
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE
    events = TradingEvent.objects.for_scope(DRILL_SCOPE).order_by("id")
    assert [(e.to_state, e.origin, e.source) for e in events] == [
        (State.HALTED, "drill", "drill"),
        (State.ACTIVE, "drill", "drill"),
    ]
    assert not Trade.objects.exists() and not Position.objects.exists()


def test_the_command_prints_each_stage_and_exits_zero_when_the_drill_passes(db):
    out = io.StringIO()
    call_command("drill", stdout=out)
    text = out.getvalue()
    assert "gate_refuses" in text and "423 trading_halted for strategy:__drill__" in text
    assert "passed." in text


def test_a_failing_stage_fails_the_run_names_the_stage_and_still_resumes(db, monkeypatch):
    # A gate that wrongly lets the drill's order through.
    monkeypatch.setattr(drill_service, "submit_trade", lambda order: (None, True))

    with pytest.raises(CommandError, match="FAILED at gate_refuses: the gate ACCEPTED"):
        call_command("drill", stdout=io.StringIO())

    run = DrillRun.objects.get()
    assert run.outcome == Outcome.FAILED and run.failed_stage == "gate_refuses"
    assert outcomes(run.as_json())["metric_shows_halt"] == "skipped"
    assert outcomes(run.as_json())["resume"] == "passed"
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE


def test_an_unexpected_error_in_a_stage_is_a_failed_stage_not_a_passed_drill(db, monkeypatch):
    def broken_exposition():
        raise ValueError("exposition broke")

    monkeypatch.setattr(drill_service, "exposition", broken_exposition)
    with pytest.raises(CommandError, match="FAILED at metric_shows_halt: unexpected error: ValueError"):
        call_command("drill", stdout=io.StringIO())
    run = DrillRun.objects.get()
    assert run.outcome == Outcome.FAILED
    assert outcomes(run.as_json())["resume"] == "passed"
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE


def interrupted_drill() -> None:
    """What a drill killed after its halt leaves: the drill scope HALTED, its run "running"
    (long enough ago to count as dead) and, where monitoring runs, its alert firing."""
    actor = drill_actor()
    service.drill_transition(State.HALTED, reason="kill-switch drill #0", actor=actor)
    DrillRun.objects.create(
        started_by=actor.name,
        origin="beat",
        started_at=timezone.now() - timedelta(seconds=drill_service.STALE_RUN_SECONDS + 60),
    )
    Alert.objects.create(
        fingerprint="d1",
        starts_at=timezone.now(),
        status=AlertStatus.FIRING,
        alertname=drill_service.DRILL_ALERT,
    )


def test_a_drill_recovers_the_scope_an_interrupted_drill_left_halted(db):
    interrupted_drill()

    record = drill_json()

    assert record["outcome"] == "passed"
    assert [stage["name"] for stage in record["stages"]] == ["recover", *STAGES]
    assert outcomes(record)["recover"] == "passed"
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE
    events = TradingEvent.objects.for_scope(DRILL_SCOPE).order_by("id")
    assert [e.to_state for e in events] == [State.HALTED, State.ACTIVE, State.HALTED, State.ACTIVE]
    assert "recovering from an interrupted drill" in events[1].reason


def polls_resolving_the_old_alert_after(polls: int):
    """time for the drill's module whose sleep() resolves the stored drill alert at the
    given poll, as Alertmanager's resolved notification would (no thread, no real wait)."""
    count = 0

    def sleep(seconds: float) -> None:
        nonlocal count
        count += 1
        if count == polls:
            Alert.objects.filter(alertname=drill_service.DRILL_ALERT).update(status=AlertStatus.RESOLVED)

    return SimpleNamespace(monotonic=time.monotonic, sleep=sleep, time_ns=time.time_ns)


def test_with_monitoring_the_recovery_waits_for_the_old_alert_to_resolve(db, settings, monkeypatch):
    settings.DRILL_ALERTS = True
    interrupted_drill()
    monkeypatch.setattr(drill_service, "time", polls_resolving_the_old_alert_after(3))
    drill = drill_service.Drill(
        run=DrillRun.objects.create(started_by="t", origin="test"), actor=drill_actor()
    )

    assert drill.stage("recover", 60.0, lambda until: drill_service._recover(drill, until))

    assert not Alert.objects.filter(status=AlertStatus.FIRING).exists()
    assert drill.run.stages[0]["detail"].endswith(f"its {drill_service.DRILL_ALERT} resolved")


def test_an_old_alert_that_never_resolves_fails_the_recovery_and_skips_the_halt(db, settings, monkeypatch):
    settings.DRILL_ALERTS = True
    settings.DRILL_ALERT_TIMEOUT_SECONDS = 0.3
    interrupted_drill()
    monkeypatch.setattr(drill_service.diagnosis, "why_not_resolved", lambda name: "Prometheus still has it")

    with pytest.raises(
        CommandError, match="FAILED at recover: the interrupted drill's KillSwitchDrillHalted"
    ):
        call_command("drill", stdout=io.StringIO())

    run = DrillRun.objects.get(outcome=Outcome.FAILED)
    assert run.failed_stage == "recover" and "Prometheus still has it" in run.failure
    assert outcomes(run.as_json())["halt"] == "skipped"
    assert run.stage("halt")["detail"] == "the drill scope could not be recovered"
    # Recovered all the same: the scope is ACTIVE, and the run halted nothing of its own.
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE
    assert TradingEvent.objects.for_scope(DRILL_SCOPE).count() == 2


def test_a_database_error_while_checking_for_an_interrupted_drill_fails_the_run(db, monkeypatch):
    def unreachable(drill, until):
        raise OperationalError("the database went away")

    monkeypatch.setattr(drill_service, "_recover", unreachable)

    with pytest.raises(CommandError, match="FAILED at recover: OperationalError"):
        call_command("drill", stdout=io.StringIO())

    # Never stored as passed: it halted nothing, so it proved nothing.
    run = DrillRun.objects.get()
    assert run.outcome == Outcome.FAILED
    assert outcomes(run.as_json())["halt"] == "skipped"


def test_the_recovery_does_not_wait_for_an_older_alert_whose_resolution_was_lost(db, settings, monkeypatch):
    settings.DRILL_ALERTS = True
    interrupted_drill()
    # The interrupted drill's own alert resolved; one from hours before it never did.
    Alert.objects.update(status=AlertStatus.RESOLVED)
    Alert.objects.create(
        fingerprint="d0",
        starts_at=timezone.now() - timedelta(hours=3),
        status=AlertStatus.FIRING,
        alertname=drill_service.DRILL_ALERT,
    )

    def no_wait(seconds: float) -> None:
        raise AssertionError("the recovery waited")

    monkeypatch.setattr(drill_service, "time", SimpleNamespace(monotonic=time.monotonic, sleep=no_wait))
    drill = drill_service.Drill(
        run=DrillRun.objects.create(started_by="t", origin="test"), actor=drill_actor()
    )

    assert drill.stage("recover", 60.0, lambda until: drill_service._recover(drill, until))
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE


def test_an_active_drill_scope_needs_no_recovery_and_records_no_stage(db):
    drill = drill_service.Drill(
        run=DrillRun.objects.create(started_by="t", origin="test"), actor=drill_actor()
    )

    assert drill.stage("recover", 60.0, lambda until: drill_service._recover(drill, until))
    assert drill.run.stages == []


def drill_actor() -> service.Actor:
    return service.Actor.system("drill-schedule", service.RUN_DRILL)


def test_a_drill_refuses_to_start_while_a_real_scope_is_halted(db):
    actor = service.Actor.system("test", service.HALT)
    service.halt("symbol:TSLA", reason="incident", actor=actor)

    with pytest.raises(CommandError, match=r"No drill while a real scope is HALTED \(symbol:TSLA\)"):
        call_command("drill", stdout=io.StringIO())

    assert not DrillRun.objects.exists()
    assert not TradingEvent.objects.for_scope(DRILL_SCOPE).exists()


def real_halt(scope: str = "global") -> None:
    service.halt(scope, reason="incident", actor=service.Actor.system("test", service.HALT))


def test_a_real_halt_before_the_drill_s_own_stands_the_drill_down_and_pages_nobody(db, monkeypatch):
    """An incident that begins while a drill starts (here: during its recover stage) is
    not a failed drill: the run is aborted, the last verdict on /metrics stands (no
    KillSwitchDrillFailed), and the drill scope ends ACTIVE."""
    drill_json()  # a passed drill: the verdict that must stand
    passed = DrillRun.objects.get()

    def incident_begins(drill, until):
        real_halt()

    monkeypatch.setattr(drill_service, "_recover", incident_begins)
    with pytest.raises(CommandError, match=r"stood down at halt: a real scope is HALTED \(global\)"):
        call_command("drill", stdout=io.StringIO())

    run = DrillRun.objects.exclude(pk=passed.pk).get()
    record = run.as_json()
    assert run.outcome == Outcome.ABORTED and run.failed_stage == ""
    assert outcomes(record)["halt"] == "skipped" and run.stage("halt")["detail"].startswith("stood down")
    assert run.stage("gate_refuses")["detail"] == "the drill stood down"
    assert outcomes(record)["resume"] == "passed"
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE
    after = metrics(Client())
    assert after["investiq_killswitch_drill_last_passed"] == 1
    assert after["investiq_killswitch_drill_last_run_timestamp_seconds"] == pytest.approx(
        passed.ended_at.timestamp()
    )


def test_a_real_halt_after_the_drill_s_own_stands_the_drill_down_at_the_gate(db, monkeypatch, supervisor):
    """The gate then refuses for the real (broadest) scope, which proves nothing about the
    drill's halt: the drill stands down there instead of failing, and says so."""
    halt = drill_service._halt

    def halt_then_incident(drill):
        result = halt(drill)
        real_halt()
        return result

    monkeypatch.setattr(drill_service, "_halt", halt_then_incident)
    with pytest.raises(CommandError, match="stood down at gate_refuses"):
        call_command("drill", stdout=io.StringIO())

    run = DrillRun.objects.get()
    assert run.outcome == Outcome.ABORTED
    assert outcomes(run.as_json())["halt"] == "passed"
    assert outcomes(run.as_json())["gate_refuses"] == "skipped"
    assert TradingState.objects.get(scope=DRILL_SCOPE).state == State.ACTIVE
    assert TradingState.objects.get(scope="global").state == State.HALTED  # the drill never touches it
    assert "investiq_killswitch_drill_last_passed" not in metrics(Client())  # no verdict yet
    client = Client()
    client.force_login(supervisor)
    assert "Last drill: aborted" in client.get("/").content.decode()


def test_the_service_refuses_a_drill_halt_while_a_real_scope_is_halted(db):
    service.halt("global", reason="incident", actor=service.Actor.system("test", service.HALT))
    drill_actor = service.Actor.system("drill", service.RUN_DRILL)
    with pytest.raises(InvalidTransition, match="an incident is not the time"):
        service.drill_transition(State.HALTED, reason="drill", actor=drill_actor)


def test_with_the_database_down_the_drill_fails_clearly_and_leaves_nothing(database_down):
    with pytest.raises(CommandError, match="the database cannot be reached, no drill was run"):
        call_command("drill", stdout=io.StringIO())


def test_after_the_database_returns_nothing_of_the_failed_drill_is_there(transactional_db):
    from ops.tests.conftest import unreachable_database

    with unreachable_database(), pytest.raises(CommandError):
        call_command("drill", stdout=io.StringIO())
    assert not DrillRun.objects.exists()
    assert not TradingState.objects.filter(scope=DRILL_SCOPE).exists()


def test_a_stored_run_cannot_be_deleted_nor_its_starter_rewritten(db):
    from django.db import DatabaseError, transaction

    drill_json()
    run = DrillRun.objects.get()
    for write in (
        lambda: DrillRun.objects.filter(pk=run.pk).update(started_by="someone else"),
        lambda: DrillRun.objects.filter(pk=run.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            write()
    assert DrillRun.objects.get().as_json() == run.as_json()


# --- The drill scope is the drill's alone -------------------------------------------------


def test_real_orders_cannot_name_the_drill_strategy(api):
    response = api.post_json("/api/v1/trades", trade_payload(strategy="__drill__"))
    assert response.status_code == 400
    assert "reserved for the kill-switch drill" in response.json()["fields"]["strategy"][0]
    assert not Trade.objects.exists() and not Position.objects.exists()


@pytest.mark.parametrize("call", ["halt", "resume", "request_resume"])
def test_the_ordinary_kill_switch_paths_cannot_touch_the_drill_scope(db, supervisor, one_person_resume, call):
    actor = service.Actor.of(supervisor)
    with pytest.raises(InvalidTransition, match="belongs to the kill-switch drill"):
        getattr(service, call)(DRILL_SCOPE, reason="try", actor=actor)
    assert not TradingEvent.objects.exists()


def test_only_the_run_drill_permission_may_drill(db, operator, supervisor):
    with pytest.raises(NotPermitted, match=r"ops\.run_drill"):
        service.drill_transition(State.HALTED, reason="drill", actor=service.Actor.of(operator))
    result = service.drill_transition(State.HALTED, reason="drill", actor=service.Actor.of(supervisor))
    assert result.state.scope == DRILL_SCOPE and result.event.origin == "drill"


def test_a_drill_resume_needs_no_second_person_even_with_the_two_person_rule(
    db, supervisor, two_person_resume
):
    actor = service.Actor.of(supervisor)
    service.drill_transition(State.HALTED, reason="drill", actor=actor)
    result = service.drill_transition(State.ACTIVE, reason="drill over", actor=actor)
    assert result.state.state == State.ACTIVE and result.event.approver == ""


def test_the_drill_halt_is_not_a_trading_halt_on_the_metrics_or_the_console(db, supervisor):
    client = Client()
    client.force_login(supervisor)
    service.drill_transition(State.HALTED, reason="drill", actor=service.Actor.of(supervisor))

    values = metrics(client)
    assert values["investiq_killswitch_drill_halted"] == 1
    # Not in the per-scope gauge, which would fire TradingScopeHalted, a real alert.
    assert not [name for name in values if name.startswith("investiq_trading_state{") and "__drill__" in name]
    page = client.get("/").content.decode()
    assert "<title>ACTIVE" in page
    assert "A drill is running now" in page
    # Nor the red "TRADING HALTED" banner of every staff page.
    assert "__drill__" not in client.get("/admin/").content.decode()


def test_drill_metrics_are_absent_until_a_drill_has_run_then_tell_time_and_outcome(db, settings):
    settings.DRILL_MAX_AGE_DAYS = 7
    client = Client()
    before = metrics(client)
    assert before["investiq_killswitch_drill_halted"] == 0
    assert before["investiq_killswitch_drill_max_age_seconds"] == 7 * 86400
    assert "investiq_killswitch_drill_last_passed" not in before
    assert "investiq_killswitch_drill_last_success_timestamp_seconds" not in before

    drill_json()
    after = metrics(client)
    run = DrillRun.objects.get()
    assert after["investiq_killswitch_drill_last_passed"] == 1
    assert after["investiq_killswitch_drill_last_success_timestamp_seconds"] == pytest.approx(
        run.ended_at.timestamp()
    )
    assert after["investiq_killswitch_drill_last_run_timestamp_seconds"] == pytest.approx(
        run.ended_at.timestamp()
    )


def test_a_failed_drill_sets_last_passed_to_zero(db, monkeypatch):
    monkeypatch.setattr(drill_service, "submit_trade", lambda order: (None, True))
    with pytest.raises(CommandError):
        call_command("drill", stdout=io.StringIO())
    assert metrics(Client())["investiq_killswitch_drill_last_passed"] == 0


def test_a_drill_that_never_passed_counts_its_age_from_the_first_drill(db, monkeypatch):
    monkeypatch.setattr(drill_service, "submit_trade", lambda order: (None, True))
    for _ in range(2):
        with pytest.raises(CommandError):
            call_command("drill", stdout=io.StringIO())
    first, last = DrillRun.objects.order_by("started_at")
    values = metrics(Client())
    assert values["investiq_killswitch_drill_last_success_timestamp_seconds"] == pytest.approx(
        first.started_at.timestamp()
    )
    assert values["investiq_killswitch_drill_last_run_timestamp_seconds"] == pytest.approx(
        last.ended_at.timestamp()
    )


def test_a_scrape_reads_the_drills_in_one_query(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    drill_json()
    with CaptureQueriesContext(connection) as captured:
        Client().get("/metrics")
    assert len([query for query in captured.captured_queries if "ops_drillrun" in query["sql"]]) == 1


# --- Real trading during a drill --------------------------------------------------------


@pytest.mark.usefixtures("wide_pool")
def test_real_trades_posted_during_a_drill_are_all_accepted_and_nothing_else_changes(transactional_db):
    _, token = ApiClient.issue("engine")
    service.halt(
        "symbol:MSFT",
        reason="reducing",
        to_state=State.REDUCING,
        actor=service.Actor.system("t", service.HALT),
    )
    scopes_before = dict(TradingState.objects.values_list("scope", "state"))
    events_before = list(TradingEvent.objects.values_list("id", flat=True))
    drilling, all_posted = threading.Event(), threading.Event()
    posters = threading.Semaphore(0)
    real_halt = service.drill_transition

    def halt_then_hold(*args, **kwargs):
        # The drill's halt is committed, and the drill holds it until every real trade
        # has been answered: all of them meet the drill scope HALTED.
        result = real_halt(*args, **kwargs)
        if kwargs.get("reason", "").startswith("kill-switch drill"):
            drilling.set()
            assert all_posted.wait(timeout=120)
        return result

    def post(index: int) -> int:
        try:
            drilling.wait(timeout=60)
            client = ApiTestClient(token=token)
            statuses = []
            for n in range(10):
                payload = trade_payload(
                    client_order_id=f"real-{index}-{n}", strategy=f"s{index}", symbol="AAPL"
                )
                statuses.append(client.post_json("/api/v1/trades", payload).status_code)
            # Still HALTED when the last answer came: the drill waits for all_posted.
            statuses.append(TradingState.objects.get(scope=DRILL_SCOPE).state)
            return statuses
        finally:
            posters.release()
            connections.close_all()

    def drill() -> dict:
        try:
            return drill_json()
        finally:
            connections.close_all()

    def count_posters() -> None:
        for _ in range(4):
            posters.acquire()
        all_posted.set()

    with (
        unittest.mock.patch.object(service, "drill_transition", halt_then_hold),
        ThreadPoolExecutor(6) as pool,
    ):
        posting = [pool.submit(post, index) for index in range(4)]
        pool.submit(count_posters)
        record = pool.submit(drill).result()
        statuses = [status for future in posting for status in future.result()]

    assert record["outcome"] == "passed"
    assert statuses == ([201] * 10 + [State.HALTED]) * 4
    assert Trade.objects.count() == 40
    scopes_after = dict(TradingState.objects.values_list("scope", "state"))
    assert scopes_after == scopes_before | {DRILL_SCOPE: State.ACTIVE}
    new_events = TradingEvent.objects.exclude(id__in=events_before)
    assert {event.scope for event in new_events} == {DRILL_SCOPE}


# --- Console and admin -----------------------------------------------------------------


@pytest.fixture
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from investiq.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_a_supervisor_runs_a_drill_from_the_console_and_sees_the_last_drill(db, supervisor, eager):
    client = Client()
    client.force_login(supervisor)
    page = client.get("/").content.decode()
    assert "Run kill-switch drill" in page and "No kill-switch drill has run yet." in page

    response = client.post("/console/drill")
    assert response.status_code == 302
    run = DrillRun.objects.get()
    assert (run.outcome, run.started_by, run.origin) == ("passed", supervisor.username, "web")
    page = client.get("/").content.decode()
    assert "Last drill: passed 0 s ago" in page
    assert "alert stages skipped: DRILL_ALERTS is off" in page


def test_a_viewer_has_no_drill_button_and_a_forged_post_is_refused(db, viewer, operator, eager):
    for user in (viewer, operator):
        client = Client()
        client.force_login(user)
        page = client.get("/").content.decode()
        assert "Run kill-switch drill" not in page
        assert "Running a drill needs the supervisor role." in page
        assert client.post("/console/drill").status_code == 403
    assert not DrillRun.objects.exists()


def test_the_console_refuses_to_start_a_drill_during_an_incident(db, supervisor, eager):
    service.halt("global", reason="incident", actor=service.Actor.system("t", service.HALT))
    client = Client()
    client.force_login(supervisor)
    response = client.post("/console/drill", follow=True)
    assert "Nothing started: No drill while a real scope is HALTED (global)" in response.content.decode()
    assert not DrillRun.objects.exists()


def test_the_admin_lists_drill_runs_read_only_and_exports_them(db, supervisor):
    drill_json()
    run = DrillRun.objects.get()
    client = Client()
    client.force_login(supervisor)
    listing = client.get("/admin/ops/drillrun/")
    assert listing.status_code == 200 and "passed" in listing.content.decode()
    assert client.get(f"/admin/ops/drillrun/{run.pk}/change/").status_code == 200
    assert client.get("/admin/ops/drillrun/add/").status_code == 403

    exported = client.post("/admin/ops/drillrun/", {"action": "export_json", "_selected_action": [run.pk]})
    assert exported["Content-Disposition"] == 'attachment; filename="drill-runs.json"'
    assert json.loads(exported.content) == {"drill_runs": [run.as_json()]}

    exported = client.post("/admin/ops/drillrun/", {"action": "export_csv", "_selected_action": [run.pk]})
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [row["stage"] for row in rows] == STAGES
    assert {row["run_outcome"] for row in rows} == {"passed"}


def test_a_viewer_sees_drill_runs_in_the_admin(db, viewer):
    drill_json()
    client = Client()
    client.force_login(viewer)
    assert client.get("/admin/ops/drillrun/").status_code == 200


# --- The schedule -----------------------------------------------------------------------

SCHEDULE = "from django.conf import settings; print(settings.CELERY_BEAT_SCHEDULE.get('kill-switch-drill'))"


def test_there_is_no_scheduled_drill_by_default():
    result = run_manage("shell", "-c", SCHEDULE, env={"DEBUG": "true"})
    assert result.stdout.strip().splitlines()[-1] == "None", result.stderr


def test_drill_schedule_adds_a_beat_entry_for_the_drill_task():
    result = run_manage("shell", "-c", SCHEDULE, env={"DEBUG": "true", "DRILL_SCHEDULE": "0 6 * * 1"})
    assert "'task': 'ops.drill.tasks.scheduled_drill'" in result.stdout, result.stderr
    assert "<crontab: 0 6 * 1 * (m/h/dM/MY/d)>" in result.stdout


def test_a_malformed_drill_schedule_is_refused_at_start_saying_how_to_write_it():
    result = run_manage("check", env={"DEBUG": "true", "DRILL_SCHEDULE": "every monday"})
    assert result.returncode != 0
    assert "DRILL_SCHEDULE='every monday' is not a crontab line" in result.stderr


def test_the_scheduled_task_runs_a_drill_as_the_schedule(db):
    from ops.drill.tasks import scheduled

    run = DrillRun.objects.get(pk=scheduled())
    assert (run.outcome, run.started_by, run.origin) == ("passed", "system:drill-schedule", "beat")


def test_a_scheduled_drill_during_an_incident_is_not_run_and_says_why(db, caplog):
    from ops.drill.tasks import scheduled

    service.halt("global", reason="incident", actor=service.Actor.system("t", service.HALT))
    assert scheduled() is None
    assert "an incident is not the time for a drill" in caplog.text
    assert not DrillRun.objects.exists()


def test_a_real_worker_on_redis_runs_the_scheduled_drill(celery_worker_process):
    import time

    from ops.drill.tasks import scheduled_drill

    scheduled_drill.apply_async(queue=celery_worker_process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not DrillRun.objects.finished().exists():
        time.sleep(0.2)
    run = DrillRun.objects.get()
    assert (run.outcome, run.origin) == ("passed", "beat"), run.as_json()
