"""Beat tasks. Time limits stay below the interval so a cycle never overlaps the next."""

from celery import shared_task
from django.conf import settings

from ops.health import service
from ops.health.runner import task_time_limits

HARD_LIMIT, SOFT_LIMIT = task_time_limits(settings.PROBE_INTERVAL_SECONDS)


@shared_task(time_limit=HARD_LIMIT, soft_time_limit=SOFT_LIMIT)
def probe_dependencies() -> None:
    service.periodic_cycle()


@shared_task
def prune_dependency_history() -> int:
    return service.prune_history()
