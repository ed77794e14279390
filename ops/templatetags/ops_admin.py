"""Template tags of the ops admin templates (templates/admin/ops/)."""

from __future__ import annotations

from django import template

from ops import admin_dates

register = template.Library()

register.inclusion_tag("admin/date_hierarchy.html", name="ops_date_hierarchy")(admin_dates.date_hierarchy)
