"""Template filters of the console (templates/ops/console/)."""

from __future__ import annotations

from datetime import datetime

from django import template

from ops.console.overview import duration

register = template.Library()


@register.filter
def age(then: datetime | None, now: datetime) -> str:
    """How long ago, to the second under two minutes ("42 s"); Django's timesince says
    "0 minutes" for anything under a minute, which reads as "just now" in an outage."""
    if then is None:
        return ""
    return duration(max(0, int((now - then).total_seconds())))
