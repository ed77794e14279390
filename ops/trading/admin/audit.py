"""The trading audit in the admin, read-only: state changes, fills booked past the gate,
broker cancellations (the database refuses edits too)."""

from __future__ import annotations

from django.contrib import admin

from ops.admin_base import ReadOnlyAdmin
from ops.trading.models import BrokerCancellation, FillBooking, TradingEvent


@admin.register(TradingEvent)
class TradingEventAdmin(ReadOnlyAdmin):
    """The audit log: shown, never edited or deleted (the database refuses it too)."""

    list_display = (
        "created_at",
        "scope",
        "from_state",
        "to_state",
        "actor",
        "approver",
        "source",
        "origin",
        "broker_outcome",
        "reason",
    )
    list_filter = ("to_state", "source", "broker_outcome")
    search_fields = ("scope", "actor", "origin")
    date_hierarchy = "created_at"


@admin.register(FillBooking)
class FillBookingAdmin(ReadOnlyAdmin):
    """Fills booked past the gate: who, from where, why, and what state they went past."""

    list_display = (
        "created_at",
        "trade",
        "actor",
        "origin",
        "state_at_booking",
        "scope_at_booking",
        "reason",
    )
    list_filter = ("state_at_booking",)
    list_select_related = ("trade",)


@admin.register(BrokerCancellation)
class BrokerCancellationAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "actor",
        "source",
        "origin",
        "broker_outcome",
        "broker_attempts",
        "reason",
        "broker_detail",
    )
    list_filter = ("broker_outcome",)
