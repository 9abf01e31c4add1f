"""How the Railway driver converges an existing service and reads each deployment status,
against the stand-in serving Railway's real schema."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from app.providers.base import ProviderError, TransientProviderError
from tests.providers.railway_support import (
    CONFIG,
    IMAGE,
    TOKEN,
    make_context,
    make_provider,
    railway,
)
from tests.support.railway_standin import RailwayStandIn

__all__ = ["railway"]  # the fixture, imported for pytest
NEW_IMAGE = "ghcr.io/example/agent:1.5.0"


def test_a_new_image_reaches_an_existing_service(railway: RailwayStandIn) -> None:
    first = make_provider(railway).create(make_context())
    railway.operations.clear()

    second = make_provider(railway, image=NEW_IMAGE).create(make_context())

    assert second["serviceId"] == first["serviceId"]
    assert "serviceInstanceUpdate" in railway.operations
    [service] = railway.services()
    assert service["image"] == NEW_IMAGE
    old, new = railway.deployments_of(first["serviceId"])
    assert (old["image"], new["image"]) == (IMAGE, NEW_IMAGE)
    assert new["status"] == "SUCCESS" and second["deploymentId"] == new["id"]
    assert second["image"] == NEW_IMAGE


def test_new_resources_are_applied_and_deployed(railway: RailwayStandIn) -> None:
    first = make_provider(railway).create(make_context())
    bigger = {**CONFIG, "resources": {"cpu": "2", "memory": "2Gi"}}

    second = make_provider(railway).create(make_context(config=bigger))

    [service] = railway.services()
    assert service["limits"] == {"vCPUs": 2.0, "memoryGB": 2.0}
    assert second["deploymentId"] != first["deploymentId"]
    assert second["resources"] == {"vCPUs": 2.0, "memoryGB": 2.0, "applied": True}


def test_a_sleeping_service_is_reported_healthy_and_not_redeployed(
    railway: RailwayStandIn,
) -> None:
    provider = make_provider(railway)
    first = provider.create(make_context())
    railway.sleep_service(first["serviceId"])
    railway.operations.clear()

    again = provider.create(make_context())
    check = provider.check(make_context())

    assert again["deploymentId"] == first["deploymentId"] and again["status"] == "SLEEPING"
    assert "serviceInstanceDeployV2" not in railway.operations
    assert check.healthy is True
    assert check.data["status"] == "SLEEPING" and "asleep" in check.detail
    assert [d["status"] for d in railway.deployments_of(first["serviceId"])] == ["SLEEPING"]


def test_a_deployment_that_waits_first_is_followed_to_success(railway: RailwayStandIn) -> None:
    railway.script_next_deployment("SUCCESS", extra=[("WAITING", 0.3)])

    outputs = make_provider(railway).create(make_context())

    assert outputs["status"] == "SUCCESS"


def test_needs_approval_is_a_permanent_error_naming_the_way_out(
    railway: RailwayStandIn,
) -> None:
    railway.script_next_deployment("NEEDS_APPROVAL")

    with pytest.raises(ProviderError, match="NEEDS_APPROVAL: approve it") as raised:
        make_provider(railway).create(make_context())

    assert not isinstance(raised.value, TransientProviderError)


def test_our_own_deployment_skipped_is_a_permanent_error(railway: RailwayStandIn) -> None:
    railway.script_next_deployment("SKIPPED")

    with pytest.raises(ProviderError, match="ended SKIPPED"):
        make_provider(railway).create(make_context())


def test_a_deployment_replaced_by_someone_elses_is_followed(railway: RailwayStandIn) -> None:
    """Someone deploys the service while the driver waits: its deployment goes REMOVED and
    the driver follows the newer one instead of failing or deploying a third time."""
    provider = make_provider(railway)
    first = provider.create(make_context())
    railway.timings["BUILDING"] = 0.6
    outside: list[str] = []

    def deploy_from_outside() -> None:
        # Once the driver's own deployment is building: a fixed 0.3 s sleep raced it on
        # a loaded machine (the outside deployment came first and the driver's own
        # superseded it, SKIPPED instead of REMOVED).
        deadline = time.monotonic() + 30
        while [d["status"] for d in railway.deployments_of(first["serviceId"])][1:2] != [
            "BUILDING"
        ]:
            assert time.monotonic() < deadline, "the driver's deployment never built"
            time.sleep(0.02)
        document = (
            "mutation d($s: String!, $e: String!) "
            "{ serviceInstanceDeployV2(serviceId: $s, environmentId: $e) }"
        )
        answer = requests.post(
            railway.url,
            json={"query": document, "variables": {"s": first["serviceId"], "e": "env-standin"}},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        outside.append(answer.json()["data"]["serviceInstanceDeployV2"])

    thread = threading.Thread(target=deploy_from_outside)
    thread.start()
    second = make_provider(railway, image=NEW_IMAGE).create(make_context())
    thread.join()

    statuses = [d["status"] for d in railway.deployments_of(first["serviceId"])]
    assert statuses[1] == "REMOVED" and statuses[2] == "SUCCESS"
    assert second["deploymentId"] == outside[0]


def test_check_while_a_new_deployment_builds_is_healthy_when_the_old_one_serves(
    railway: RailwayStandIn,
) -> None:
    make_provider(railway).create(make_context())
    railway.timings["BUILDING"] = 5.0
    provider = make_provider(railway, image=NEW_IMAGE, deploy_timeout=0.1)
    with pytest.raises(TransientProviderError):
        provider.create(make_context())

    check = provider.check(make_context())

    assert check.healthy is True
    assert check.data["status"] in ("BUILDING", "INITIALIZING", "QUEUED")
    assert "previous serves" in check.detail


def test_a_service_built_from_another_image_fails_its_check(railway: RailwayStandIn) -> None:
    make_provider(railway).create(make_context())

    check = make_provider(railway, image=NEW_IMAGE).check(make_context())

    assert check.healthy is False
    assert check.detail == f"service image is {IMAGE}, wanted {NEW_IMAGE}"
