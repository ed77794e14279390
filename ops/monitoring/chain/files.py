"""The monitoring files, parsed, and the metric names their expressions use."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from django.conf import settings


def monitoring_dir() -> Path:
    return Path(settings.MONITORING_DIR)


YAML_FILES = (
    "prometheus.yml",
    "alertmanager.yml",
    "grafana/provisioning/datasources/prometheus.yml",
    "grafana/provisioning/dashboards/dashboard.yml",
)
DASHBOARD = "grafana/dashboards/investiq-overview.json"


class BrokenFile(Exception):
    """A file that is missing or does not parse; the message names the file and line."""


def load(relative: str) -> Any:
    path = monitoring_dir() / relative
    try:
        text = path.read_text()
    except OSError as exc:
        raise BrokenFile(f"{path}: cannot read: {exc.strerror}") from None
    try:
        if relative.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise BrokenFile(f"monitoring/{relative}:{exc.lineno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BrokenFile(f"monitoring/{relative}{where}: {problem}") from None


def rule_files() -> list[str]:
    """The rule files prometheus.yml lists (relative to monitoring/)."""
    return list((load("prometheus.yml") or {}).get("rule_files") or [])


def all_files() -> list[str]:
    return [*YAML_FILES, *rule_files(), DASHBOARD]


@dataclass(frozen=True)
class Expression:
    where: str  # e.g. "alert HighLatency (alert_rules.yml)"
    expr: str


def rule_expressions() -> Iterator[Expression]:
    for name in rule_files():
        for group in (load(name) or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                kind, title = (
                    ("alert", rule["alert"]) if "alert" in rule else ("recording rule", rule.get("record"))
                )
                yield Expression(f"{kind} {title} ({name})", str(rule["expr"]))


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for name in rule_files()
        for group in (load(name) or {}).get("groups") or []
        for rule in group.get("rules") or []
        if "record" in rule
    }


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []  # rows keep their panels inside


def panel_expressions() -> Iterator[Expression]:
    for panel in panels(load(DASHBOARD)):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                yield Expression(f"panel {panel.get('id')} {panel.get('title')!r}", target["expr"])


# --- metric names in PromQL ----------------------------------------------------------

# Grafana's interval variables ($__rate_interval, ${window}) stand where PromQL wants a
# duration; any duration parses the same, so they are replaced before parsing.
_GRAFANA_DURATION = re.compile(r"\[[^\]]*\$[^\]]*\]")
_GRAFANA_VARIABLE = re.compile(r"\$(?:\{\w+(?::\w+)?\}|\w+)")


class BadExpression(ValueError):
    """A PromQL expression the parser refuses; the message is the parser's."""


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: the names of its vector selectors
    (`foo{job="x"}`) and the `__name__` they match for equality (`{__name__="foo"}`),
    read from the AST of the PromQL parser, so functions, label names, keywords and
    strings are never mistaken for metrics."""
    text = _GRAFANA_DURATION.sub(lambda m: _GRAFANA_VARIABLE.sub("5m", m.group(0)), expr)
    try:
        tree = promql_parser.parse(text)
    except ValueError as exc:
        raise BadExpression(str(exc)) from None
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            groups = [node.matchers.matchers, *node.matchers.or_matchers]  # {a="x" or b="y"}
            for matcher in (matcher for group in groups for matcher in group):
                if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
                    names.add(matcher.value)

    promql_parser.walk(tree, pre_visit=visit)
    return names
