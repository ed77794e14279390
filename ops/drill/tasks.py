"""The drill in the worker: from beat (DRILL_SCHEDULE) and from the console's button."""

from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.auth import get_user_model

from ops.drill.service import DrillRefused, run_drill, time_limits
from ops.trading import service

logger = logging.getLogger(__name__)

SOFT_TIME_LIMIT, TIME_LIMIT = time_limits()


def scheduled() -> int | None:
    actor = service.Actor.system("drill-schedule", service.RUN_DRILL)
    try:
        return run_drill(actor=actor, started_by=actor.name, origin="beat").pk
    except DrillRefused as exc:
        logger.warning("scheduled kill-switch drill not run: %s", exc)
        return None


def started_from_console(user_id: int) -> int | None:
    user = get_user_model().objects.get(pk=user_id)
    # The permission is checked again here, by the service, as the person who pressed.
    actor = service.Actor.of(user, origin="web")
    try:
        return run_drill(actor=actor, started_by=user.get_username(), origin="web").pk
    except DrillRefused as exc:
        logger.warning("kill-switch drill asked by %s not run: %s", user.get_username(), exc)
        return None


@shared_task(time_limit=TIME_LIMIT, soft_time_limit=SOFT_TIME_LIMIT)
def scheduled_drill() -> int | None:
    return scheduled()


@shared_task(time_limit=TIME_LIMIT, soft_time_limit=SOFT_TIME_LIMIT)
def console_drill(user_id: int) -> int | None:
    return started_from_console(user_id)
