"""Celery wiring, following Flask's examples/celery: every task runs in an app context."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_init, worker_process_init
from flask import Flask

from app import config
from app.config import Settings
from app.domain import dispatch
from app.persistence.database import db

logger = logging.getLogger("provisioning.celery")


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.REDIS_URL,
        "result_backend": settings.REDIS_URL,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 24 * 3600,
        # A task message is acknowledged only when the task ends, and handed to
        # another worker if the one running it dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Backstop only: steps enforce STEP_TIMEOUT themselves and record why.
        "task_time_limit": int(settings.STEP_TIMEOUT + 30),
        "broker_transport_options": {"visibility_timeout": 3600},
        "broker_connection_retry_on_startup": True,
        "task_track_started": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "beat_schedule": beat_schedule(settings),
    }


# Seconds between sweeps for webhook deliveries whose message was lost.
WEBHOOK_REDELIVER_INTERVAL = 30.0
# Seconds between looks for credentials due for rotation (when rotation is on).
CREDENTIAL_ROTATION_CHECK_INTERVAL = 3600.0


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Every periodic task, in one place (tasks are referred to by name); an
    interval of 0 turns a task off."""
    periodic: tuple[tuple[str, str, float], ...] = (
        ("sweep-stalled-jobs", "provisioning.sweep", settings.SWEEP_INTERVAL),
        ("redeliver-overdue-webhooks", "webhooks.redeliver_overdue", WEBHOOK_REDELIVER_INTERVAL),
        ("detect-drift", "provisioning.detect_drift", settings.DRIFT_CHECK_INTERVAL),
        ("purge-oauth-tokens", "provisioning.purge_oauth_tokens", settings.OAUTH_PURGE_INTERVAL),
        ("enforce-retention", "provisioning.enforce_retention", settings.RETENTION_INTERVAL),
        (
            "purge-final-copies",
            "provisioning.purge_final_copies",
            settings.FINAL_COPY_PURGE_INTERVAL,
        ),
        (
            "rotate-due-credentials",
            "provisioning.rotate_due_credentials",
            CREDENTIAL_ROTATION_CHECK_INTERVAL if settings.CREDENTIAL_ROTATION_DAYS > 0 else 0,
        ),
    )
    return {name: {"task": task, "schedule": every} for name, task, every in periodic if every > 0}


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(settings))
    celery_app.set_default()
    app.extensions["celery"] = celery_app

    import tasks  # registers the task modules
    from tasks.canvas import CeleryDispatcher

    tasks.register_all()
    dispatch.install(CeleryDispatcher())
    return celery_app


@worker_process_init.connect
def _dispose_inherited_connections(**_: object) -> None:
    """A forked pool child must not reuse the sockets its parent opened."""
    db.dispose()


@worker_init.connect
def _load_drivers_before_forking(**_: object) -> None:
    """The pool's children inherit what the parent has imported. Each child
    used to import the container driver's SDK on its first step, about 70 ms
    of CPU per child (issue 16's profile of a burst). Nothing here connects
    anywhere; a driver that cannot be built now fails its first step as before."""
    from app.providers.registry import providers

    try:
        providers(config.current())
    except Exception:
        logger.warning("drivers not loaded before forking the pool", exc_info=True)
