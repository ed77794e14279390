"""The ops roles: ops_viewer, ops_operator (halt, silence alerts), ops_supervisor (resume, approve)."""

from __future__ import annotations

from django.apps import apps as global_apps

VIEW = [
    "view_trade",
    "view_analysis",
    "view_tradingstate",
    "view_tradingevent",
    "view_position",
    "view_resumerequest",
    "view_fillbooking",
    "view_brokercancellation",
    "view_drillrun",
    "view_alert",
    "view_silenceevent",
    "view_dependencystatus",
    "view_dependencycheck",
    # Failed logins and lockouts (django-axes), so anyone on call sees who is locked out.
    "axes.view_accessattempt",
]
ROLES = {
    "ops_viewer": VIEW,
    "ops_operator": [*VIEW, "halt_trading", "silence_alerts"],
    "ops_supervisor": [
        *VIEW,
        "halt_trading",
        "resume_trading",
        "approve_resume",
        "book_fill",
        "silence_alerts",
        "run_drill",
    ],
}
CUSTOM = {
    "halt_trading": "Can halt trading or set it to reducing-only",
    "resume_trading": "Can resume trading (or request a resume)",
    "approve_resume": "Can approve another person's resume request",
    "book_fill": "Can book a fill that already happened at the broker, past the gate",
    "silence_alerts": "Can silence a firing alert in Alertmanager, or expire a silence",
    "run_drill": "Can run the kill-switch drill (on the drill scope only)",
}


def roles_with(codename: str) -> list[str]:
    """The roles (viewer, operator, supervisor) whose group holds `codename`."""
    return [role.removeprefix("ops_") for role, codenames in ROLES.items() if codename in codenames]


def role_needed(codename: str) -> str:
    """`codename` in words, for a 403: 'the operator or supervisor role'."""
    roles = roles_with(codename)
    if not roles:
        return f"the ops.{codename} permission, which no ops role holds"
    return f"the {' or '.join(roles)} role"


def ensure_roles(apps=global_apps) -> None:
    """Create the groups, their permissions and the global scope row; idempotent.

    Runs from the data migration and again after every migrate/flush (post_migrate),
    so a test database flush or a partial restore never leaves the roles missing.
    """
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    TradingState = apps.get_model("ops", "TradingState")

    def permission(name: str):
        # "codename" for the ops app's own, "app_label.codename" for another app's.
        app_label, _, codename = name.rpartition(".")
        model = "tradingstate" if codename in CUSTOM else codename.split("_", 1)[1]
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label or "ops", model=model)
        perm, _ = Permission.objects.get_or_create(
            codename=codename,
            content_type=content_type,
            defaults={"name": CUSTOM.get(codename) or f"Can view {model}"},
        )
        return perm

    for role, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*[permission(codename) for codename in codenames])
    TradingState.objects.get_or_create(scope="global", defaults={"state": "ACTIVE", "source": "migration"})
