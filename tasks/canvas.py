"""All canvas building in one place: forward, removal and compensation chains."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from amqp.exceptions import ChannelError
from celery import chain, current_app
from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tasks.rollback import finish, rollback
from tasks.steps import COMPENSATION_TASKS, REMOVAL_TASKS, STEP_TASKS
from tasks.webhooks import deliver_webhook


class CeleryDispatcher:
    def forward(self, job_id: uuid.UUID, generation: int, steps: Sequence[str]) -> None:
        """Each step carries the rollback as its errback: a failure anywhere in
        the chain starts the rollback, which reads what to undo from the DB."""
        on_error = rollback.si(str(job_id), generation)
        signatures = [STEP_TASKS[name].si(str(job_id), generation) for name in steps]
        for signature in signatures:
            signature.link_error(on_error)
        chain(*signatures).apply_async()

    def removals(self, job_id: uuid.UUID, generation: int, steps: Sequence[str]) -> None:
        """No errback: a removal that fails is recorded and the next one runs."""
        chain(*(REMOVAL_TASKS[name].si(str(job_id), generation) for name in steps)).apply_async()

    def rollback(self, job_id: uuid.UUID, generation: int) -> None:
        rollback.si(str(job_id), generation).apply_async()

    def compensations(self, job_id: uuid.UUID, generation: int, steps: Sequence[str]) -> None:
        signatures = [COMPENSATION_TASKS[name].si(str(job_id), generation) for name in steps]
        chain(*signatures, finish.si(str(job_id), generation)).apply_async()

    def webhook(self, delivery_id: int, countdown: float | None = None) -> None:
        deliver_webhook.apply_async((delivery_id,), countdown=countdown)

    @contextmanager
    def joining(self, trace_parent: str | None) -> Iterator[None]:
        """The publish spans (and, through the message headers, the steps) become
        children of the job's submitting request. Already in that trace (the
        request itself sends): nothing changes."""
        job_context = TraceContextTextMapPropagator().extract({"traceparent": trace_parent or ""})
        job_trace = trace.get_current_span(job_context).get_span_context()
        here = trace.get_current_span().get_span_context()
        if not job_trace.is_valid or job_trace.trace_id == here.trace_id:
            yield
            return
        token = context.attach(job_context)
        try:
            yield
        finally:
            context.detach(token)

    def backlog(self) -> int:
        app = current_app._get_current_object()
        with app.connection_for_read() as connection:
            try:
                declared = connection.default_channel.queue_declare(
                    queue=app.conf.task_default_queue, passive=True
                )
            except ChannelError:
                return 0  # Redis drops an empty list: no queue is an empty queue
            return int(declared.message_count)
