"""Trading admin, one module per concern: trades added through the gate (`trades`), the
kill-switch actions (`kill_switch`) and the audit (`audit`). Importing the package
registers them all."""

from ops.trading.admin import audit, kill_switch, trades
from ops.trading.admin.trades import BookFillForm, TradeAddForm

__all__ = ["BookFillForm", "TradeAddForm", "audit", "kill_switch", "trades"]
