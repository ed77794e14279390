"""Runbooks in the console: /console/runbooks/<alertname> shows the alert's section of
monitoring/README.md, so a firing alert's runbook is one click away, with no GitHub
access needed at 3 a.m.

The alert rules point each runbook_url at `monitoring/README.md#<alertname lower-cased>`
and the README has one `### <AlertName>` section per alert (ops/tests/test_monitoring_rules.py
holds both). The section is rendered by markdown-it-py (CommonMark) with raw HTML off.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET
from markdown_it import MarkdownIt

from ops.console.views import console_view

RUNBOOKS_SECTION = "## Alerts and runbooks"
HEADING = re.compile(r"^(#{1,3}) (.+?)\s*$")
NAME = re.compile(r"\A[A-Za-z0-9_:]{1,200}\Z")  # Prometheus alert names (metric-name syntax)


def readme() -> Path:
    return Path(settings.BASE_DIR) / "monitoring" / "README.md"


@lru_cache(maxsize=4)
def _sections(path: Path, mtime: float) -> dict[str, str]:
    """Every `### Name` section under "Alerts and runbooks", by lower-cased name."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            if level <= 2:
                inside = line.strip() == RUNBOOKS_SECTION
                current = None
                continue
            if inside and level == 3:
                current = sections.setdefault(heading.group(2).strip().lower(), [])
                continue
        if current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in sections.items()}


def runbook_markdown(alertname: str) -> str | None:
    path = readme()
    try:
        found = _sections(path, path.stat().st_mtime)
    except OSError:
        return None
    return found.get(alertname.lower())


def render(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": False}).render(markdown)


@require_GET
@console_view
def runbook(request: HttpRequest, alertname: str) -> HttpResponse:
    text = runbook_markdown(alertname) if NAME.match(alertname) else None
    context = {
        "alertname": alertname,
        "html": mark_safe(render(text)) if text is not None else "",  # noqa: S308 - markdown-it escapes, html off
        "source": "monitoring/README.md",
        "user": request.user,
    }
    return TemplateResponse(
        request, "ops/console/runbook.html", context, status=200 if text is not None else 404
    )
