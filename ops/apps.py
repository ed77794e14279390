from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "InvestIQ operations"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.db.models.signals import post_migrate

        from ops import checks  # noqa: F401 - registers the system checks
        from ops.logins.lockouts import log_lockout
        from ops.monitoring import metrics  # noqa: F401 - defines the metrics before any request
        from ops.trading.roles import ensure_roles

        # Again after every migrate and test-database flush: the roles must always exist.
        post_migrate.connect(lambda sender, **kwargs: ensure_roles(), sender=self, weak=False)
        # A lockout names the username in the log (axes' own lines mask it).
        user_locked_out.connect(log_lockout, dispatch_uid="ops.logins.log_lockout")
