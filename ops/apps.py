from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "InvestIQ operations"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.db.models.signals import post_migrate, pre_migrate

        # Imported for their effect: checks registers the system checks, metrics defines
        # the metrics before any request.
        from ops import checks, metrics  # noqa: F401
        from ops.drill.metrics import DrillCollector
        from ops.logins.lockouts import log_lockout
        from ops.monitoring import collector

        pre_migrate.connect(_before_migrate, sender=self, weak=False)
        # Again after every migrate and test-database flush: the roles must always exist,
        # and every append-only table keeps its guard (SQLite's table rebuilds drop it).
        post_migrate.connect(_after_migrate, sender=self, weak=False)
        # A lockout names the username in the log (axes' own lines mask it).
        user_locked_out.connect(log_lockout, dispatch_uid="ops.logins.log_lockout")
        # /metrics exports the drills' outcome without importing the drill, which reads /metrics.
        collector.register(DrillCollector())


def _before_migrate(sender: AppConfig, using: str, **kwargs) -> None:
    from django.db import connections

    from ops import guards

    connection = connections[using]
    if connection.vendor == "sqlite":
        # SQLite's guard names the table's columns, and SQLite refuses to drop a column
        # a trigger names: off while the migrations change the tables, on after them.
        guards.uninstall(connection, sender.get_models())


def _after_migrate(sender: AppConfig, using: str, **kwargs) -> None:
    from django.db import connections

    from ops import guards
    from ops.trading.roles import ensure_roles

    ensure_roles()
    guards.install(connections[using], sender.get_models())
