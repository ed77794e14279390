"""The ops app's admin, one module per capability.

Django's admin autodiscovery imports this module; importing each capability's admin
module registers its models.
"""

from ops.alerts import admin as alerts_admin
from ops.api import admin as api_admin
from ops.drill import admin as drill_admin
from ops.health import admin as health_admin
from ops.logins import admin as logins_admin
from ops.records import admin as records_admin
from ops.trading import admin as trading_admin

__all__ = [
    "alerts_admin",
    "api_admin",
    "drill_admin",
    "health_admin",
    "logins_admin",
    "records_admin",
    "trading_admin",
]
