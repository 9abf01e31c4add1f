"""The Railway driver's requests: token kinds, rate limits, its request budget; and the
stand-in's own fidelity to Railway (schema validation, every status)."""

from __future__ import annotations

import time

import pytest
import requests

from app.providers.base import ProviderError, TransientProviderError
from tests.providers.railway_support import (
    PROJECT_TOKEN,
    TOKEN,
    make_context,
    make_provider,
    railway,
)
from tests.support.railway_standin import RailwayStandIn

__all__ = ["railway"]  # the fixture, imported for pytest


def test_a_project_token_is_sent_as_project_access_token(railway: RailwayStandIn) -> None:
    outputs = make_provider(railway, api_token=PROJECT_TOKEN, token_kind="project").create(
        make_context()
    )

    assert outputs["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("token", "kind"),
    [(PROJECT_TOKEN, "account"), (TOKEN, "project"), (PROJECT_TOKEN, "workspace")],
)
def test_a_token_in_the_wrong_header_is_refused(
    railway: RailwayStandIn, token: str, kind: str
) -> None:
    with pytest.raises(ProviderError, match="Not Authorized"):
        make_provider(railway, api_token=token, token_kind=kind).create(make_context())


def test_429_is_waited_out_for_its_retry_after(railway: RailwayStandIn) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    railway.rate_limit(count=2, retry_after=1)

    outputs = make_provider(railway, sleep=sleep).create(make_context())

    assert outputs["status"] == "SUCCESS"
    assert waits[:2] == [1.0, 1.0]


def test_429_asking_for_longer_than_allowed_is_transient_without_waiting(
    railway: RailwayStandIn,
) -> None:
    waits: list[float] = []
    railway.rate_limit(count=1, retry_after=120)

    with pytest.raises(TransientProviderError, match="Retry-After 120s"):
        make_provider(railway, sleep=waits.append, max_retry_wait=30).create(make_context())

    assert waits == []


def test_one_call_never_sends_more_than_its_request_budget(railway: RailwayStandIn) -> None:
    railway.timings["BUILDING"] = 30.0

    with pytest.raises(TransientProviderError, match="request budget of 12"):
        make_provider(
            railway, request_budget=12, poll_interval=0.01, poll_max_interval=0.01
        ).create(make_context())

    assert railway.requests == 12


def test_a_first_provision_with_default_polling_fits_a_small_budget(
    railway: RailwayStandIn,
) -> None:
    """With the default schedule (3 s doubling to 15 s) a 45 s wait is 5 polls; a first
    provision is then at most 7 fixed requests plus those: the README's figure of 12."""
    railway.timings["BUILDING"] = 0.1
    provider = make_provider(
        railway, poll_interval=0.05, poll_max_interval=0.25, deploy_timeout=0.75
    )

    provider.create(make_context())

    assert len(provider.delays) + 1 == 5  # polls: one at once, one after each delay
    assert railway.requests <= 12


def test_the_standin_refuses_what_railways_schema_refuses(railway: RailwayStandIn) -> None:
    # The old stand-in accepted this DeploymentListInput.status shape; Railway's schema has
    # DeploymentStatusInput {in, notIn} instead.
    document = """query { deployments(input: {status: {successfulOnly: true}}, first: 1) {
        edges { node { id } } } }"""
    answer = requests.post(
        railway.url,
        json={"query": document},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )

    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "successfulOnly" in error["message"] and error["locations"]


def test_the_standin_emits_all_thirteen_statuses(railway: RailwayStandIn) -> None:
    provider = make_provider(railway)
    seen: set[str] = set()

    def watch(service_id: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen.update(d["status"] for d in railway.deployments_of(service_id))
            time.sleep(0.005)

    service_id = provider.create(make_context())["serviceId"]
    for outcome in ("FAILED", "CRASHED", "NEEDS_APPROVAL"):
        railway.script_next_deployment(outcome)
        with pytest.raises(ProviderError):
            provider.create(make_context(config={"model": outcome}))
    railway.script_next_deployment("SUCCESS", extra=[("WAITING", 0.3)])
    deploy = (
        "mutation d($s: String!, $e: String!) "
        "{ serviceInstanceDeployV2(serviceId: $s, environmentId: $e) }"
    )
    for _ in range(2):  # the second skips the first, which is WAITING
        requests.post(
            railway.url,
            json={"query": deploy, "variables": {"s": service_id, "e": railway.environment_id}},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        watch(service_id, 0.2)
    watch(service_id, 1.0)  # through the live one REMOVING, then REMOVED
    railway.sleep_service(service_id)
    watch(service_id, 0.05)

    assert seen == {
        "BUILDING", "CRASHED", "DEPLOYING", "FAILED", "INITIALIZING", "NEEDS_APPROVAL",
        "QUEUED", "REMOVED", "REMOVING", "SKIPPED", "SLEEPING", "SUCCESS", "WAITING",
    }  # fmt: skip
