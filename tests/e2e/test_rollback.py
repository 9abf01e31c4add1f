"""A failure at each step rolls back exactly what exists, checked in the real systems."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from app.domain import saga
from tests.conftest import Stack, department_payload
from tests.e2e.conftest import leftovers, submit, wait_for_job

STEPS = [(index, step) for index, step in enumerate(saga.SAGA)]


@pytest.mark.parametrize(("index", "step"), STEPS, ids=[s.name for s in saga.SAGA])
def test_failure_at_each_step_undoes_earlier_steps_in_reverse(
    index: int,
    step: saga.SagaStep,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, f"{step.provider}.create", mode="fail")  # type: ignore[attr-defined]

    view = wait_for_job(submit(client, admin_headers, payload))

    assert view["status"] == "failed"
    assert view["error"]["step"] == step.name
    assert "injected fault" in view["error"]["message"]
    by_name = {s["name"]: s for s in view["steps"]}
    assert (
        by_name[step.name]["status"] == "rolled_back"
        if step.has_resources
        else by_name[step.name]["status"] == "failed"
    )
    for earlier in saga.SAGA[:index]:
        expected = "rolled_back" if earlier.has_resources else "completed"
        assert by_name[earlier.name]["status"] == expected, earlier.name
    for later in saga.SAGA[index + 1 :]:
        assert by_name[later.name]["status"] == "pending", later.name
    assert leftovers(live_stack, department_id) == {}
    # Compensations ran in exact reverse order of the steps that had started.
    undone = [line for line in view["logs"] if "resources removed" in line]
    started = [s.name for s in saga.SAGA[: index + 1] if s.has_resources]
    assert [line.split("] ")[-1].split()[0] for line in undone] == list(reversed(started))


@pytest.mark.parametrize(
    "step",
    [s for s in saga.SAGA if s.has_resources],
    ids=[s.name for s in saga.SAGA if s.has_resources],
)
def test_a_step_that_fails_after_acting_leaves_nothing_of_its_own(
    step: saga.SagaStep,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, f"{step.provider}.create", mode="fail_after")  # type: ignore[attr-defined]

    view = wait_for_job(submit(client, admin_headers, payload))

    assert view["status"] == "failed" and view["error"]["step"] == step.name
    assert leftovers(live_stack, department_id) == {}


def test_transient_errors_are_retried_with_backoff_then_succeed(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    payload = department_payload()
    faults.arm(payload["departmentId"], "gateway.create", mode="transient", times=2)  # type: ignore[attr-defined]

    view = wait_for_job(submit(client, admin_headers, payload))

    assert view["status"] == "completed", view
    gateway = next(s for s in view["steps"] if s["name"] == "configure_gateway")
    assert gateway["attempts"] == 3
    assert sum("retrying in" in line for line in view["logs"]) == 2


def test_transient_errors_past_the_retry_budget_roll_back(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    payload = department_payload()
    faults.arm(payload["departmentId"], "workflows.create", mode="transient")  # type: ignore[attr-defined]

    view = wait_for_job(submit(client, admin_headers, payload))

    assert view["status"] == "failed"
    assert view["error"]["step"] == "deploy_workflows"
    assert "gave up after 4 attempts" in view["error"]["message"]
    assert view["error"]["attempt"] == 4
    assert leftovers(live_stack, payload["departmentId"]) == {}


def test_a_compensation_that_cannot_succeed_is_reported_as_left_behind(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, "gateway.create", mode="fail")  # type: ignore[attr-defined]
    faults.arm(department_id, "database.delete", mode="fail")  # type: ignore[attr-defined]

    view = wait_for_job(submit(client, admin_headers, payload))

    assert view["status"] == "failed"
    database = next(s for s in view["steps"] if s["name"] == "create_database")
    assert database["status"] == "compensation_failed"
    assert any("left behind: create_database" in line for line in view["logs"])
    assert leftovers(live_stack, department_id).keys() == {"schema", "role"}
    # The operator's way out: cleanup removes it for real.
    from app import config
    from app.domain.services.cleanup import cleanup_department
    from app.providers.faults import FaultInjector

    FaultInjector(live_stack.env["REDIS_URL"]).clear(department_id)
    assert cleanup_department(department_id, config.current()).ok
    assert leftovers(live_stack, department_id) == {}
