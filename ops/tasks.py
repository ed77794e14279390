"""Celery tasks: thin wrappers that call plain functions (tests exercise those)."""

from celery import shared_task

from ops.api.schemas import TradeForm
from ops.health.tasks import probe_dependencies, prune_dependency_history  # noqa: F401 - found by the worker
from ops.records import TradeOrder, record_trade


@shared_task
def record_trade_task(payload: dict) -> int:
    """Record a trade reported asynchronously (e.g. a fill from a broker stream)."""
    trade, _ = record_trade(TradeOrder.from_dict(TradeForm.validate(payload)))
    return trade.pk
