"""Kill-switch tasks: the broker-cancellation outbox (see ops.trading.broker)."""

from celery import shared_task
from django.conf import settings

from ops.trading import broker


# max_retries=None: the row counts the attempts (BROKER_CANCEL_MAX_ATTEMPTS), across
# re-queues by the sweep, which Celery's own retry counter would not see.
@shared_task(
    bind=True,
    max_retries=None,
    time_limit=settings.BROKER_CANCEL_TASK_TIME_LIMIT,
    soft_time_limit=settings.BROKER_CANCEL_TASK_TIME_LIMIT - 5,
)
def cancel_open_orders_task(self, kind: str, pk: int) -> None:
    retry_in = broker.attempt_cancellation(kind, pk)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(time_limit=60, soft_time_limit=50)
def sweep_broker_cancellations() -> int:
    return broker.requeue_stale()
