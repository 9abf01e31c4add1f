"""N8nWorkflowProvider against a real n8n (scripts/n8n.sh install start setup).

The session reuses an installed/running n8n when there is one and leaves it
running. Every test uses department ids unique to the run and deletes them.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from app.providers.base import DepartmentContext, ProviderError, TransientProviderError
from app.providers.workflow_templates import CATALOGUE, DEFAULT_TEMPLATES_DIR, build_workflow
from app.providers.workflows_n8n import N8nWorkflowProvider, department_tag
from tests.support.n8n import N8nInstance, department, ensure_n8n

pytestmark = pytest.mark.slow

RUN = secrets.token_hex(3)


@pytest.fixture(scope="session")
def n8n() -> N8nInstance:
    if shutil.which("npm") is None:
        pytest.skip("npm is required to install n8n (scripts/n8n.sh install)")
    return ensure_n8n()


@pytest.fixture
def provider(n8n: N8nInstance) -> N8nWorkflowProvider:
    return N8nWorkflowProvider(base_url=n8n.base_url, api_key=n8n.api_key)


@pytest.fixture
def make_department(
    provider: N8nWorkflowProvider,
) -> Iterator[Callable[..., DepartmentContext]]:
    """Contexts with run-unique ids; whatever they created is deleted afterwards."""
    made: list[DepartmentContext] = []

    def make(suffix: str, **config: Any) -> DepartmentContext:
        config.setdefault("departmentName", f"Department {suffix}")
        config.setdefault("adminEmail", f"admin-{suffix}@example.com")
        made.append(department(f"t{RUN}-{suffix}", **config))
        return made[-1]

    yield make
    for context in made:
        provider.delete(department(context.department_id))


def names_of(n8n: N8nInstance, context: DepartmentContext) -> list[str]:
    return sorted(w["name"] for w in n8n.workflows_named(f"{context.department_id}:"))


def test_create_makes_exactly_the_configured_workflows_active_and_tagged(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    ctx = make_department("all", workflows=list(CATALOGUE))

    outputs = provider.create(ctx)

    assert set(outputs["workflows"]) == set(CATALOGUE)
    found = n8n.workflows_named(f"{ctx.department_id}:")
    assert sorted(w["name"] for w in found) == sorted(
        f"{ctx.department_id}:{wf}" for wf in CATALOGUE
    )
    assert {w["id"] for w in found} == set(outputs["workflows"].values())
    for workflow in found:
        assert workflow["active"] is True
        assert [t["name"] for t in workflow["tags"]] == [f"dept:{ctx.department_id}"]


def test_create_again_finds_instead_of_duplicating(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    ctx = make_department("again", workflows=["email", "database"])

    first = provider.create(ctx)
    second = provider.create(ctx)

    assert first == second
    assert len(names_of(n8n, ctx)) == 2


def test_a_new_department_costs_n8n_eight_requests_and_its_check_one(
    n8n: N8nInstance, make_department: Callable[..., Any]
) -> None:
    """Issue 16: a department with two workflows took 14 requests, paging
    through every department's tag, listing the department before creating and
    twice after each creation; its health check listed it twice. n8n's CPU is
    a quarter of what a department costs."""
    sent: list[tuple[str, str]] = []

    class Counting(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *a: Any, **k: Any) -> Any:
            sent.append((str(method), urlsplit(str(url)).path))
            return super().request(method, url, *a, **k)

    counted = N8nWorkflowProvider(base_url=n8n.base_url, api_key=n8n.api_key, session=Counting())
    ctx = make_department("count", workflows=["email", "database"])

    counted.create(ctx)

    assert ("GET", "/api/v1/tags") not in sent, sent
    listings = [call for call in sent if call == ("GET", "/api/v1/workflows")]
    assert len(listings) == 1, sent  # after creating: leftovers and racing creators
    assert len(sent) == 8, sent  # tag, 2 x (create, tag, activate), one listing
    assert len(names_of(n8n, ctx)) == 2

    sent.clear()
    assert counted.check(ctx).healthy
    assert sent == [("GET", "/api/v1/workflows")], sent


def test_webhook_answers_with_rendered_department_values(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    name = 'Ventes "Île-de-France" \\ {{x}} — 東京 🚀'
    ctx = make_department("hook", workflows=["notifications"], departmentName=name)
    provider.create(ctx)

    response = n8n.trigger(f"{ctx.department_id}-notifications")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["departmentId"] == ctx.department_id
    assert body["departmentName"] == name
    assert body["adminEmail"] == ctx.config["adminEmail"]
    assert body["workflow"] == "notifications"
    assert body["templateVersion"] == "1"


def test_value_that_would_become_an_n8n_expression_is_refused(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    ctx = make_department("expr", workflows=["email"], departmentName="={{ $env.HOME }}")

    with pytest.raises(ProviderError, match="expression"):
        provider.create(ctx)
    assert names_of(n8n, ctx) == []


def test_config_change_converges_to_the_configured_set(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    ctx = make_department("shrink", workflows=["email", "google_drive", "google_calendar"])
    first = provider.create(ctx)

    ctx.config["workflows"] = ["email", "google_calendar"]
    ctx.config["departmentName"] = "Renamed"
    second = provider.create(ctx)

    assert second["workflows"] == {k: first["workflows"][k] for k in ("email", "google_calendar")}
    assert names_of(n8n, ctx) == [
        f"{ctx.department_id}:email",
        f"{ctx.department_id}:google_calendar",
    ]
    assert n8n.trigger(f"{ctx.department_id}-google_drive").status_code == 404
    # The kept workflow was updated in place and serves the new value at once.
    assert n8n.trigger(f"{ctx.department_id}-email").json()["departmentName"] == "Renamed"


def test_retry_adopts_an_untagged_workflow_and_drops_duplicates(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    ctx = make_department("adopt", workflows=["email"])
    # What a crash between "create workflow" and "tag it" (or two racing jobs) leaves.
    body = build_workflow(ctx, DEFAULT_TEMPLATES_DIR, "email")
    ids = [n8n.api("POST", "/workflows", json=body).json()["id"] for _ in range(2)]

    outputs = provider.create(ctx)

    assert outputs["workflows"]["email"] == ids[0]
    (workflow,) = n8n.workflows_named(f"{ctx.department_id}:")
    assert workflow["id"] == ids[0]
    assert workflow["active"] is True
    assert [t["name"] for t in workflow["tags"]] == [f"dept:{ctx.department_id}"]


def test_concurrent_creates_converge(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    contexts = [make_department(f"race{i}", workflows=["email"]) for i in range(3)]
    errors: list[BaseException] = []

    def run(ctx: DepartmentContext) -> None:
        try:
            N8nWorkflowProvider(base_url=n8n.base_url, api_key=n8n.api_key).create(ctx)
        except BaseException as exc:  # surfaced below; a thread cannot raise into pytest
            errors.append(exc)

    # Same department twice (races on the tag and the workflow) plus others.
    threads = [threading.Thread(target=run, args=(c,)) for c in [*contexts, contexts[0]]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Racing jobs may be told to retry, never that the failure is permanent.
    assert [e for e in errors if not isinstance(e, TransientProviderError)] == []
    for ctx in contexts:
        provider.create(ctx)  # the retry, which also tidies any duplicate
        assert names_of(n8n, ctx) == [f"{ctx.department_id}:email"]


def test_long_department_id_gets_a_tag_within_n8n_limit(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    ctx = make_department("x" * 20, workflows=["database"])
    assert len(ctx.department_id) > 19

    provider.create(ctx)

    (workflow,) = n8n.workflows_named(f"{ctx.department_id}:")
    assert [t["name"] for t in workflow["tags"]] == [department_tag(ctx.department_id)]
    assert len(department_tag(ctx.department_id)) <= 24


def test_delete_removes_everything_and_is_idempotent(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    ctx = make_department("gone", workflows=["email", "notifications"])
    provider.create(ctx)

    provider.delete(department(ctx.department_id))  # nothing but the id
    provider.delete(department(ctx.department_id))

    assert names_of(n8n, ctx) == []
    assert f"dept:{ctx.department_id}" not in n8n.tag_names()
    assert n8n.trigger(f"{ctx.department_id}-email").status_code == 404


def test_check_reports_healthy_then_names_the_inactive_and_missing(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    ctx = make_department("check", workflows=["email", "google_drive"])
    ids = provider.create(ctx)["workflows"]

    healthy = provider.check(ctx)
    assert healthy.name == "n8n_workflows"
    assert healthy.healthy, healthy.detail

    assert n8n.api("POST", f"/workflows/{ids['email']}/deactivate").ok
    assert n8n.api("DELETE", f"/workflows/{ids['google_drive']}").ok
    unhealthy = provider.check(ctx)
    assert not unhealthy.healthy
    assert "email: inactive" in unhealthy.detail
    assert "google_drive: missing" in unhealthy.detail

    provider.create(ctx)  # repairs both
    assert provider.check(ctx).healthy


def test_bad_input_is_a_permanent_error(
    n8n: N8nInstance, provider: N8nWorkflowProvider, make_department: Callable[..., Any]
) -> None:
    with pytest.raises(ProviderError, match="unknown workflow"):
        provider.create(make_department("bad", workflows=["email", "fax"]))
    for bad_id in ["Sales", "a", "x/../y", "dept:evil", "1abc"]:
        with pytest.raises(ProviderError, match="invalid departmentId"):
            provider.create(department(bad_id, workflows=["email"]))
        with pytest.raises(ProviderError, match="invalid departmentId"):
            provider.delete(department(bad_id))


def test_unreachable_n8n_is_transient(make_department: Callable[..., Any]) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    offline = N8nWorkflowProvider(base_url=f"http://127.0.0.1:{port}", api_key="unused")
    ctx = department(f"t{RUN}-offline", workflows=["email"])

    with pytest.raises(TransientProviderError):
        offline.create(ctx)
    with pytest.raises(TransientProviderError):
        offline.delete(ctx)
    result = offline.check(ctx)
    assert not result.healthy
    assert result.data["error"] == "TransientProviderError"


def test_wrong_api_key_is_a_permanent_error(n8n: N8nInstance) -> None:
    provider = N8nWorkflowProvider(base_url=n8n.base_url, api_key="not-a-key")
    with pytest.raises(ProviderError) as raised:
        provider.create(department(f"t{RUN}-nokey", workflows=["email"]))
    assert not isinstance(raised.value, TransientProviderError)
