"""The saga's tasks keep no results in Redis (issue 16): nothing reads them."""

from __future__ import annotations

from tasks.rollback import finish, rollback
from tasks.steps import COMPENSATION_TASKS, REMOVAL_TASKS, STEP_TASKS


def test_no_saga_task_stores_its_state_or_result() -> None:
    tasks = [*STEP_TASKS.values(), *REMOVAL_TASKS.values(), *COMPENSATION_TASKS.values()]
    for task in [*tasks, rollback, finish]:
        assert task.ignore_result, task.name
        assert task.max_retries == 8, task.name  # the database-outage retry is kept
