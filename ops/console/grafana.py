"""Grafana URLs for the console's embedded panels, built here and nowhere else.

The panel ids come from the provisioned dashboard JSON (monitoring/grafana/dashboards/),
so the console and the dashboard cannot drift: renumber a panel there and the console
follows; delete the file and the console says so instead of showing broken frames.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from django.conf import settings

DASHBOARD_FILE = Path("grafana") / "dashboards" / "investiq-overview.json"
# d-solo renders one panel without Grafana's chrome; the console refreshes itself, the
# frames follow Grafana's own refresh.
PANEL_QUERY = {"orgId": "1", "from": "now-1h", "to": "now", "refresh": "30s", "theme": "light"}
ENABLE_HINT = (
    "Set GRAFANA_URL (/grafana behind the compose TLS proxy, or Grafana's own URL such as "
    "http://127.0.0.1:3000) "
    "and allow embedding in Grafana (GF_SECURITY_ALLOW_EMBEDDING=true) to see the overview "
    "dashboard's panels here."
)


# What may appear in a CSP source: a host name or address and a port, nothing that could
# end the directive (";", ",", spaces) or add a source.
# GRAFANA_URL may instead be a path on the console's own origin (/grafana behind the TLS
# proxy): letters, digits and "/_.-" only, and not "//", which a browser reads as a host.
_SAME_ORIGIN_PATH = re.compile(r"\A/(?!/)[A-Za-z0-9/_.\-]*\Z")
_NETLOC = re.compile(r"\A[A-Za-z0-9.\-]+(:[0-9]{1,5})?\Z|\A\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?\Z")


class DashboardUnavailable(Exception):
    """The dashboard JSON is missing or not a dashboard; the console shows why."""


@dataclass(frozen=True)
class Panel:
    id: int
    title: str


@dataclass(frozen=True)
class Dashboard:
    uid: str
    slug: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class EmbeddedPanel:
    title: str
    url: str


def dashboard_path() -> Path:
    return Path(settings.MONITORING_DIR) / DASHBOARD_FILE


def load_dashboard(path: Path | None = None) -> Dashboard:
    return _load(path or dashboard_path())


@lru_cache(maxsize=4)
def _load(path: Path) -> Dashboard:
    # Cached per process: the file is part of the deployment and changes only with it.
    try:
        data = json.loads(path.read_text())
        panels = sorted(
            data["panels"], key=lambda p: (p.get("gridPos", {}).get("y", 0), p.get("gridPos", {}).get("x", 0))
        )
        return Dashboard(
            uid=str(data["uid"]),
            slug=_slug(str(data.get("title") or data["uid"])),
            panels=tuple(Panel(id=int(p["id"]), title=str(p.get("title", ""))) for p in panels),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DashboardUnavailable(f"cannot read the dashboard {path}: {exc}") from None


def _slug(title: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())


def grafana_origin(base_url: str | None = None) -> str | None:
    """The only origin the console may frame, as a CSP source: scheme://host[:port] of
    GRAFANA_URL, or 'self' when it is a path on the console's origin; None when unset."""
    url = settings.GRAFANA_URL if base_url is None else base_url
    if _SAME_ORIGIN_PATH.match(url):
        return "'self'"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not _NETLOC.match(parts.netloc):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def embedded_panels(base_url: str | None = None, dashboard: Dashboard | None = None) -> list[EmbeddedPanel]:
    """One d-solo URL per dashboard panel, in the dashboard's reading order; [] when GRAFANA_URL is unset."""
    base = (settings.GRAFANA_URL if base_url is None else base_url).rstrip("/")
    if grafana_origin(base) is None:
        return []
    dashboard = dashboard or load_dashboard()
    return [
        EmbeddedPanel(
            title=panel.title,
            url=f"{base}/d-solo/{dashboard.uid}/{dashboard.slug}?"
            + urlencode({**PANEL_QUERY, "panelId": panel.id}),
        )
        for panel in dashboard.panels
    ]
