"""Celery tasks: thin wrappers that call plain functions (tests exercise those)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from ops.api.errors import ApiError
from ops.api.schemas import TradeRequest
from ops.drill.tasks import console_drill, scheduled_drill  # noqa: F401 - found by the worker
from ops.health.tasks import probe_dependencies, prune_dependency_history  # noqa: F401 - found by the worker
from ops.records.intake import InvalidOrder, TradeOrder
from ops.trading import gate
from ops.trading.tasks import cancel_open_orders_task, sweep_broker_cancellations  # noqa: F401 - found by the worker


# The state could not be read, or the database went away: try again later instead of
# dropping a reported trade. Bounded, with backoff (about 2 h in all); then the task fails
# loudly in the worker log.
@shared_task(
    autoretry_for=(gate.TradingStateUnavailable, OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=15,
)
def record_trade_task(payload: dict) -> int | None:
    """Record a trade reported asynchronously, through the pre-trade gate like the API.

    A refusal is logged and counted, not retried: it would be refused again. A payload
    that does not validate raises InvalidOrder (not retried either).
    """
    try:
        data = TradeRequest.validate(payload)
    except ApiError as exc:
        # The task answers no HTTP request: the API's 400 becomes the order's own error.
        raise InvalidOrder(exc.detail, exc.fields) from None
    return gate.submit_reported_trade(TradeOrder.from_dict(data))
