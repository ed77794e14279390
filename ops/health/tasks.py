"""Beat tasks. Time limits stay below the interval so a cycle never overlaps the next."""

from celery import shared_task
from django.conf import settings

from ops.health import service


@shared_task(
    time_limit=settings.PROBE_INTERVAL_SECONDS, soft_time_limit=max(settings.PROBE_INTERVAL_SECONDS - 2, 1)
)
def probe_dependencies() -> None:
    service.periodic_cycle()


@shared_task
def prune_dependency_history() -> int:
    return service.prune_history()
