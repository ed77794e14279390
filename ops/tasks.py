"""Celery tasks: thin wrappers that call plain functions (tests exercise those)."""

from celery import shared_task

from ops.api.schemas import TradeForm
from ops.health.tasks import probe_dependencies, prune_dependency_history  # noqa: F401 - found by the worker
from ops.records.intake import TradeOrder
from ops.trading import gate
from ops.trading.tasks import cancel_open_orders_task, sweep_broker_cancellations  # noqa: F401 - found by the worker


@shared_task
def record_trade_task(payload: dict) -> int | None:
    """Record a trade reported asynchronously, through the pre-trade gate like the API.

    A refusal is logged and counted, not raised: retrying would only be refused again.
    """
    return gate.submit_reported_trade(TradeOrder.from_dict(TradeForm.validate(payload)))
