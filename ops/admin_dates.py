"""The admin's date hierarchy, read with a few index probes instead of a table scan.

Django's date_hierarchy tag lists the years (months, days) that have rows with
`queryset.datetimes(field, kind)`: `SELECT DISTINCT date_trunc(...)` over every row the
changelist matches, which on the trade list is every trade, on every page view. Here
the same periods are found by a loose index scan: the earliest row, then the earliest row
at or after the start of the next period, and so on. That is one `ORDER BY field LIMIT
1` per period shown (at most 12 months, 31 days, or the years with data) and costs the
same at a thousand rows or a billion, given an index on the field (LargeTableAdmin's
models have one per date hierarchy field).
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.contrib.admin.templatetags import admin_list
from django.db.models import QuerySet
from django.utils import timezone

# A safety stop: a level has at most 31 periods, except years, which grow by one a year.
MAX_PERIODS = 200


def _start_of(value: datetime.date, kind: str) -> datetime.date:
    """The start of the period (year, month, day) holding `value`, in the current time
    zone, as Django's datetimes() gives it (aware, at local midnight)."""
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        midnight = value.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        return _make_aware(_truncate(midnight, kind))
    return _truncate(value, kind)


def _truncate(value: datetime.date, kind: str) -> datetime.date:
    if kind == "year":
        return value.replace(month=1, day=1)
    if kind == "month":
        return value.replace(day=1)
    return value


def _next_start(start: datetime.date, kind: str) -> datetime.date:
    naive = start.replace(tzinfo=None) if isinstance(start, datetime.datetime) else start
    if kind == "year":
        following = naive.replace(year=naive.year + 1)
    elif kind == "month":
        following = (naive.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    else:
        following = naive + datetime.timedelta(days=1)
    return _make_aware(following) if isinstance(start, datetime.datetime) else following


def _make_aware(value: datetime.date) -> datetime.date:
    if isinstance(value, datetime.datetime) and settings.USE_TZ:
        return timezone.make_aware(value)
    return value


def distinct_periods(queryset: QuerySet, field: str, kind: str) -> list[datetime.date]:
    """What `queryset.datetimes(field, kind)` (or `.dates`) returns, by index probes."""
    # NULLs are no period (as in datetimes()), and SQLite would sort them first.
    probe = queryset.filter(**{f"{field}__isnull": False}).order_by(field).values_list(field, flat=True)
    periods: list[datetime.date] = []
    value = probe.first()
    while value is not None and len(periods) < MAX_PERIODS:
        start = _start_of(value, kind)
        periods.append(start)
        value = probe.filter(**{f"{field}__gte": _next_start(start, kind)}).first()
    return periods


class _PeriodProbes:
    """Stands in for `cl.queryset` inside Django's date_hierarchy tag, which asks it two
    things: aggregate(Min, Max) (index probes already) and dates()/datetimes()."""

    def __init__(self, queryset: QuerySet) -> None:
        self._queryset = queryset

    def aggregate(self, *args: Any, **kwargs: Any) -> dict:
        return self._queryset.aggregate(*args, **kwargs)

    def datetimes(self, field: str, kind: str) -> list[datetime.date]:
        return distinct_periods(self._queryset, field, kind)

    dates = datetimes


class _ProbingChangeList:
    def __init__(self, cl: Any) -> None:
        self._cl = cl
        self.queryset = _PeriodProbes(cl.queryset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cl, name)


def date_hierarchy(cl: Any) -> dict | None:
    """Django's date_hierarchy context (links, titles, the back link) for `cl`, with the
    periods read by distinct_periods(); Django's own where the admin has not opted in
    (the field may have no index there, and a probe per period would then cost more)."""
    if getattr(cl.model_admin, "probe_date_hierarchy", False):
        return admin_list.date_hierarchy(_ProbingChangeList(cl))
    return admin_list.date_hierarchy(cl)
