"""Test-wide wiring: real services when configured, and honest skips when not."""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES = os.environ.get("INVESTIQ_REQUIRE_SERVICES") == "1"


def require_service(available: bool, reason: str) -> None:
    """Skip a test whose service is missing, or fail it when services are required (CI)."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"INVESTIQ_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI any skip means a service test did not run: that is a failure, not a pass.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if REQUIRE_SERVICES and skipped and exitstatus == 0:
        reporter.write_line(
            f"INVESTIQ_REQUIRE_SERVICES=1: {len(skipped)} test(s) skipped -> failing.", red=True
        )
        session.exitstatus = 1
