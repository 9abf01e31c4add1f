"""The Railway container driver against the local Railway stand-in, over real HTTP."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest
import requests

from app.providers.base import DepartmentContext, ProviderError, TransientProviderError
from app.providers.container_railway import RailwayContainerProvider
from tests.providers.railway_support import (
    CONFIG,
    DB_PASSWORD,
    ENDPOINTS,
    IMAGE,
    OAUTH_SECRET,
    TOKEN,
    MemorySecrets,
    make_context,
    make_provider,
    railway,
)
from tests.support.railway_standin import RailwayStandIn

__all__ = ["railway"]  # the fixture, imported for pytest


def test_create_makes_one_service_with_variables_a_successful_deployment_and_a_domain(
    railway: RailwayStandIn,
) -> None:
    outputs = make_provider(railway).create(make_context())

    [service] = railway.services()
    assert service["name"] == "dept-sales-1"
    assert service["image"] == "ghcr.io/example/agent:1.4.0"
    variables = railway.variables_of(service["id"])
    assert variables["AGENT_DEPARTMENT_ID"] == "sales-1"
    assert json.loads(variables["AGENT_CONFIG_JSON"]) == CONFIG
    assert variables["AGENT_DATABASE_URL"] == (
        f"postgresql://sales_1_role:{quote(DB_PASSWORD, safe='')}@db.internal:5432/tenants"
    )
    assert variables["AGENT_DATABASE_SCHEMA"] == "sales_1_tenant"
    assert variables["AGENT_OAUTH_TOKEN_URL"] == "https://orchestrator/oauth/token"
    assert variables["AGENT_OAUTH_CLIENT_ID"] == "dept-sales-1"
    assert variables["AGENT_OAUTH_CLIENT_SECRET"] == OAUTH_SECRET
    assert variables["LOG_LEVEL"] == "info"
    assert service["limits"] == {"vCPUs": 0.5, "memoryGB": 0.5}
    [deployment] = railway.deployments_of(service["id"])
    assert deployment["status"] == "SUCCESS"
    domain = railway.domain_of(service["id"])
    assert domain and domain.endswith(".up.railway.app")
    assert outputs["runtime"] == "railway"
    assert outputs["serviceId"] == service["id"]
    assert outputs["deploymentId"] == deployment["id"]
    assert outputs["url"] == f"https://{domain}"
    assert outputs["upstream"] == f"{domain}:443"
    assert outputs["resources"] == {"vCPUs": 0.5, "memoryGB": 0.5, "applied": True}
    assert outputs["image"] == IMAGE and outputs["status"] == "SUCCESS"


def test_missing_inputs_are_a_permanent_error_before_any_request(railway: RailwayStandIn) -> None:
    with pytest.raises(ProviderError, match="oauth_client_secret") as raised:
        make_provider(railway).create(make_context(secrets={"database_password": "p"}))

    assert not isinstance(raised.value, TransientProviderError)
    assert railway.requests == 0


def test_create_again_reuses_the_service_and_its_deployment(railway: RailwayStandIn) -> None:
    provider = make_provider(railway)
    first = provider.create(make_context())
    railway.operations.clear()

    second = provider.create(make_context())

    assert second == first
    assert railway.operations == ["projectServices", "serviceState", "domains"]
    assert len(railway.services()) == 1
    assert len(railway.deployments_of(first["serviceId"])) == 1
    assert "serviceCreate" not in railway.operations
    assert "serviceInstanceDeployV2" not in railway.operations
    assert "serviceDomainCreate" not in railway.operations


def test_changed_config_redeploys_the_same_service(railway: RailwayStandIn) -> None:
    provider = make_provider(railway)
    first = provider.create(make_context())

    second = provider.create(make_context(config={**CONFIG, "model": "large"}))

    assert second["serviceId"] == first["serviceId"]
    assert second["deploymentId"] != first["deploymentId"]
    assert second["url"] == first["url"]
    assert len(railway.services()) == 1
    config = json.loads(railway.variables_of(second["serviceId"])["AGENT_CONFIG_JSON"])
    assert config["model"] == "large"


@pytest.mark.parametrize("status", ["FAILED", "CRASHED"])
def test_failed_deployment_is_a_permanent_error(railway: RailwayStandIn, status: str) -> None:
    railway.fail_next_deployment(status)

    with pytest.raises(ProviderError, match=status) as raised:
        make_provider(railway).create(make_context())

    assert not isinstance(raised.value, TransientProviderError)


def test_retry_after_a_failed_deployment_deploys_again(railway: RailwayStandIn) -> None:
    provider = make_provider(railway)
    railway.fail_next_deployment()
    with pytest.raises(ProviderError):
        provider.create(make_context())

    outputs = provider.create(make_context())

    assert len(railway.services()) == 1
    statuses = [d["status"] for d in railway.deployments_of(outputs["serviceId"])]
    assert statuses == ["FAILED", "SUCCESS"]


def test_still_building_past_the_timeout_is_transient_and_a_retry_waits(
    railway: RailwayStandIn,
) -> None:
    railway.timings["BUILDING"] = 1.5
    with pytest.raises(TransientProviderError, match="BUILDING"):
        make_provider(railway, deploy_timeout=0.2).create(make_context())

    outputs = make_provider(railway).create(make_context())

    # The retry waited for the build it had started instead of starting another one.
    [deployment] = railway.deployments_of(outputs["serviceId"])
    assert deployment["status"] == "SUCCESS"


def test_rate_limit_as_a_graphql_error_is_transient(railway: RailwayStandIn) -> None:
    railway.rate_limit(count=1, style="graphql")

    with pytest.raises(TransientProviderError):
        make_provider(railway).create(make_context())

    assert make_provider(railway).create(make_context())["runtime"] == "railway"


@pytest.mark.parametrize("unauthorized_status", [200, 401])
def test_wrong_token_is_a_permanent_error(
    railway: RailwayStandIn, unauthorized_status: int
) -> None:
    railway.unauthorized_status = unauthorized_status
    wrong = "not-the-token-9931"

    with pytest.raises(ProviderError, match="Not Authorized") as raised:
        make_provider(railway, api_token=wrong).create(make_context())

    assert not isinstance(raised.value, TransientProviderError)
    assert wrong not in str(raised.value)
    assert railway.services() == []


def test_unreachable_api_is_transient() -> None:
    with RailwayStandIn(token=TOKEN) as standin:
        url, project, environment = standin.url, standin.project_id, standin.environment_id
    provider = RailwayContainerProvider(
        api_url=url,
        api_token=TOKEN,
        project_id=project,
        environment_id=environment,
        image=IMAGE,
        endpoints=ENDPOINTS,
    )

    with pytest.raises(TransientProviderError):
        provider.create(make_context())


def test_delete_removes_the_service_and_is_idempotent(railway: RailwayStandIn) -> None:
    provider = make_provider(railway)
    provider.create(make_context())
    provider.create(make_context(department_id="other-2"))
    bare = DepartmentContext(
        department_id="sales-1", config={}, resources={}, secrets=MemorySecrets()
    )

    provider.delete(bare)
    provider.delete(bare)

    assert [s["name"] for s in railway.services()] == ["dept-other-2"]
    assert railway.operations.count("serviceDomainDelete") == 1


def test_check_reports_healthy_then_unhealthy(railway: RailwayStandIn) -> None:
    provider = make_provider(railway)
    provider.create(make_context())

    healthy = provider.check(make_context())
    assert healthy.name == "container_process"
    assert healthy.healthy is True
    assert healthy.data["status"] == "SUCCESS"

    railway.fail_next_deployment("CRASHED")
    with pytest.raises(ProviderError):
        provider.create(make_context(config={**CONFIG, "model": "large"}))
    crashed = provider.check(make_context())
    assert crashed.healthy is False
    assert crashed.data["status"] == "CRASHED"

    provider.delete(make_context())
    missing = provider.check(make_context())
    assert missing.healthy is False
    assert missing.detail == "service missing"


def test_check_with_wrong_token_is_unhealthy_not_raised(railway: RailwayStandIn) -> None:
    result = make_provider(railway, api_token="nope").check(make_context())

    assert result.healthy is False
    assert "Not Authorized" in result.detail


def test_a_deployment_started_by_service_create_already_has_the_variables(
    railway: RailwayStandIn,
) -> None:
    # Railway may build as soon as serviceCreate gets an image (one public report says it
    # does): the variables are in serviceCreate's input, so that build has them.
    railway.model.deploy_on_create = True

    outputs = make_provider(railway, variables_base={}).create(make_context(config={}))

    deployments = railway.deployments_of(outputs["serviceId"])
    assert deployments[0]["variables"]["AGENT_OAUTH_CLIENT_SECRET"] == OAUTH_SECRET
    assert deployments[0]["image"] == IMAGE
    # No resources asked for, nothing changed after creation: that build is the one used.
    assert [d["status"] for d in deployments] == ["SUCCESS"]
    assert outputs["deploymentId"] == deployments[0]["id"]
    assert "variableCollectionUpsert" not in railway.operations


def test_secrets_never_reach_outputs_errors_or_logs(
    railway: RailwayStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_provider(railway)
    texts: list[str] = []

    texts.append(json.dumps(provider.create(make_context())))
    railway.fail_next_deployment()
    with pytest.raises(ProviderError) as failed:
        provider.create(make_context(config={**CONFIG, "model": "large"}))
    texts.append(str(failed.value))
    texts.append(json.dumps(provider.check(make_context()).__dict__))
    provider.delete(make_context())

    texts.extend(record.getMessage() for record in caplog.records)
    assert any("railway" in record.getMessage() for record in caplog.records)
    for secret in (DB_PASSWORD, OAUTH_SECRET, TOKEN):
        assert not [text for text in texts if secret in text]


def test_error_text_echoing_a_secret_is_redacted(railway: RailwayStandIn) -> None:
    # Railway validation errors quote variable values; a bad base variable must not leak one.
    provider = make_provider(railway, variables_base={"BROKEN": 5})  # type: ignore[dict-item]

    with pytest.raises(ProviderError) as raised:
        provider.create(make_context())

    assert DB_PASSWORD not in str(raised.value)


def test_standin_rejects_fields_railway_does_not_have(railway: RailwayStandIn) -> None:
    response = requests.post(
        railway.url,
        json={"query": 'query { project(id: "proj-standin") { nope } }'},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
