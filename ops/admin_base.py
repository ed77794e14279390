"""Bases shared by every capability's admin: large read-mostly tables, read-only views."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from ops.paginators import LargeTablePaginator


class LargeTableAdmin(admin.ModelAdmin):
    """Changelists that stay fast at millions of rows (see LargeTablePaginator and
    ops/admin_dates.py)."""

    paginator = LargeTablePaginator
    show_full_result_count = False
    # The date hierarchy's years/months/days by index probes, not a scan of every row
    # (ops/admin_dates.py); the models give each date_hierarchy field an index.
    probe_date_hierarchy = True
    # Facet counts ("Show counts") are a COUNT per filter choice over every matching row.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    # Exact, index-backed matches only: icontains over millions of rows is a seq scan.
    exact_search_fields: tuple[str, ...] = ()
    upper_case_search_fields: tuple[str, ...] = ()
    search_help_text = "Exact match."

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q()
        for name in self.exact_search_fields:
            match |= Q(**{name: term.upper() if name in self.upper_case_search_fields else term})
        return queryset.filter(match), False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
