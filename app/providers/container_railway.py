"""Container runtime driver that runs a department's agent container on Railway.

Railway is driven through its public GraphQL API (``https://backboard.railway.com/graphql/v2``,
``Authorization: Bearer <RAILWAY_API_TOKEN>`` for account/workspace tokens). Operations used,
with the Railway documentation page each one is taken from (docs.railway.com, sources in the
railwayapp/docs repository under ``content/docs/integrations/api/``):

* ``project(id) { services { edges { node { id name } } } }`` - find the service by name
  (manage-projects / graphql-overview).
* ``serviceCreate(input: ServiceCreateInput!) { id name }`` with
  ``{projectId, name, source: {image}}`` - "Create a service / From a Docker image"
  (manage-services).
* ``variables(projectId, environmentId, serviceId, unrendered: true)`` - read the service's
  variables to tell whether anything changed (manage-variables, "Get variables"; returns a
  JSON object).
* ``variableCollectionUpsert(input: VariableCollectionUpsertInput!)`` with
  ``{projectId, environmentId, serviceId, variables, skipDeploys: true}`` (manage-variables).
* ``serviceInstanceDeployV2(serviceId, environmentId)`` - "Deploy a service"; documented to
  return the new deployment's id (manage-services; the Railway CLI's
  ``ServiceInstanceDeploy.graphql`` uses the same mutation).
* ``deployment(id) { id status staticUrl url }`` and
  ``deployments(first, input: {projectId, environmentId, serviceId}) { edges { node {...} } }``
  (manage-deployments, including the ``DeploymentStatus`` table: BUILDING, DEPLOYING, SUCCESS,
  FAILED, CRASHED, REMOVED, SLEEPING, SKIPPED, WAITING, QUEUED; the CLI docs add
  INITIALIZING and REMOVING).
* ``domains(projectId, environmentId, serviceId) { serviceDomains { id domain } }`` and
  ``serviceDomainCreate(input: {serviceId, environmentId, targetPort?}) { id domain }``
  (manage-domains).
* ``serviceDelete(id)`` - "Delete a service ... and all its deployments" (manage-services).

Error semantics: Railway answers authorization and execution failures with HTTP 200 and a
GraphQL ``errors`` array (an invalid token yields ``"Not Authorized"``), parse/validation
failures with 400, and rate limiting with 429 plus ``Retry-After`` (Public API page, "Rate
limits"; railwayapp/docs PR #1320). 429/5xx/connection failures are transient via
``app.providers.http.request``; a GraphQL error is transient only when it reads as a rate limit
or timeout, everything else is permanent.

Assumptions where the public docs are silent:

* ``deployments(...)`` lists newest first, so ``first: 1`` is the latest deployment (the
  dashboard and CLI rely on this too).
* ``project.services`` returns every service of the project without paging.
* Whether ``serviceCreate`` with an image already starts a deployment is not documented; the
  driver does not depend on it because it polls the deployment id that its own
  ``serviceInstanceDeployV2`` returned.
* ``variableCollectionUpsert`` redeploys by default (``skipDeploys`` defaults to false), so the
  driver passes ``skipDeploys: true`` and triggers exactly one deployment itself.
* CPU/memory: Railway's resource limits come from the workspace plan and are not set per
  service here, so ``config["resources"]`` is only recorded in the outputs as a hint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    TransientProviderError,
)
from app.providers.http import request

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://backboard.railway.com/graphql/v2"

IN_PROGRESS = frozenset(
    {"BUILDING", "DEPLOYING", "INITIALIZING", "QUEUED", "WAITING", "NEEDS_APPROVAL"}
)
BROKEN = frozenset({"FAILED", "CRASHED"})
TRANSIENT_ERROR_MARKERS = (
    "rate limit",
    "ratelimit",
    "too many requests",
    "timeout",
    "timed out",
    "temporarily unavailable",
    "try again",
)
TRANSIENT_ERROR_CODES = frozenset({"RATE_LIMITED", "TIMEOUT", "SERVICE_UNAVAILABLE"})

# Secret names in the department's SecretStore -> the variable the container reads.
SECRET_VARIABLES = {
    "database_password": "AGENT_DATABASE_PASSWORD",
    "oauth_client_secret": "AGENT_OAUTH_CLIENT_SECRET",
}

Q_PROJECT_SERVICES = """
query projectServices($id: String!) {
  project(id: $id) { services { edges { node { id name } } } }
}"""

M_SERVICE_CREATE = """
mutation serviceCreate($input: ServiceCreateInput!) {
  serviceCreate(input: $input) { id name }
}"""

# unrendered: compare raw values, so ${{Other.VAR}} references in variables_base stay equal.
Q_VARIABLES = """
query variables($projectId: String!, $environmentId: String!, $serviceId: String) {
  variables(
    projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, unrendered: true
  )
}"""

M_VARIABLES_UPSERT = """
mutation variableCollectionUpsert($input: VariableCollectionUpsertInput!) {
  variableCollectionUpsert(input: $input)
}"""

M_DEPLOY = """
mutation serviceInstanceDeployV2($serviceId: String!, $environmentId: String!) {
  serviceInstanceDeployV2(serviceId: $serviceId, environmentId: $environmentId)
}"""

Q_DEPLOYMENT = """
query deployment($id: String!) {
  deployment(id: $id) { id status staticUrl url }
}"""

Q_LATEST_DEPLOYMENT = """
query deployments($input: DeploymentListInput!, $first: Int) {
  deployments(input: $input, first: $first) { edges { node { id status staticUrl url } } }
}"""

Q_DOMAINS = """
query domains($projectId: String!, $environmentId: String!, $serviceId: String!) {
  domains(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId) {
    serviceDomains { id domain }
  }
}"""

M_DOMAIN_CREATE = """
mutation serviceDomainCreate($input: ServiceDomainCreateInput!) {
  serviceDomainCreate(input: $input) { id domain }
}"""

M_SERVICE_DELETE = """
mutation serviceDelete($id: String!) {
  serviceDelete(id: $id)
}"""


def service_name(department_id: str) -> str:
    """The one Railway service a department owns; the name is how retries find it again."""
    return f"dept-{department_id}"


def _graphql_error_is_transient(error: dict[str, Any]) -> bool:
    message = str(error.get("message", "")).lower()
    code = str((error.get("extensions") or {}).get("code", "")).upper()
    return code in TRANSIENT_ERROR_CODES or any(m in message for m in TRANSIENT_ERROR_MARKERS)


class RailwayGraphQL:
    """Posts GraphQL documents and turns every failure into a classified ProviderError.

    Error text from Railway can echo variable values back (validation messages quote them),
    so every message is scrubbed of the secrets registered for the current call.
    """

    def __init__(self, api_url: str, api_token: str, session: requests.Session) -> None:
        self._api_url = api_url
        self._api_token = api_token
        self._session = session
        self._sensitive: set[str] = {api_token}

    def add_sensitive(self, values: Iterable[str]) -> None:
        self._sensitive.update(v for v in values if isinstance(v, str) and v)

    def redact(self, text: str) -> str:
        for value in sorted(self._sensitive, key=len, reverse=True):
            text = text.replace(value, "***")
        return text

    def execute(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        operation = document.split("(", 1)[0].split()[-1]
        try:
            response = request(
                self._session,
                "POST",
                self._api_url,
                # 400 carries a GraphQL errors body that is read (and redacted) below.
                allow_status=frozenset({400}),
                json={"query": document, "variables": variables},
                headers={"Authorization": f"Bearer {self._api_token}"},
            )
        except ProviderError as exc:
            raise type(exc)(f"railway {operation}: {self.redact(str(exc))}") from None
        return self._data_or_raise(operation, response)

    def _data_or_raise(self, operation: str, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise ProviderError(
                f"railway {operation}: non-JSON answer ({response.status_code})"
            ) from None
        if not isinstance(body, dict):
            raise ProviderError(f"railway {operation}: unexpected answer ({response.status_code})")
        errors = body.get("errors") or []
        if errors:
            text = "; ".join(str(e.get("message", e)) for e in errors)
            message = f"railway {operation}: {self.redact(text)}"
            if all(_graphql_error_is_transient(e) for e in errors):
                raise TransientProviderError(message)
            raise ProviderError(message)
        if response.status_code != 200 or not isinstance(body.get("data"), dict):
            raise ProviderError(
                f"railway {operation}: answered {response.status_code} without data"
            )
        return body["data"]


class RailwayContainerProvider:
    """Runs ``dept-<departmentId>`` as a Railway service built from one container image."""

    name = "container"

    def __init__(
        self,
        *,
        api_url: str,
        api_token: str,
        project_id: str,
        environment_id: str,
        image: str,
        variables_base: dict[str, str] | None = None,
        poll_interval: float = 2.0,
        deploy_timeout: float = 300.0,
        session: requests.Session | None = None,
        target_port: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api_url = api_url or DEFAULT_API_URL
        self._api_token = api_token
        self._session = session or requests.Session()
        self.project_id = project_id
        self.environment_id = environment_id
        self.image = image
        self.variables_base = dict(variables_base or {})
        self.poll_interval = poll_interval
        self.deploy_timeout = deploy_timeout
        self.target_port = target_port
        self._sleep = sleep

    # -- Provider interface -------------------------------------------------------------

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        desired = self._desired_variables(context)
        gql = self._client(self._sensitive_values(desired))
        service_id = self._find_or_create_service(gql, context.department_id)
        deployment = self._converge_deployment(gql, service_id, desired)
        domain = self._ensure_domain(gql, service_id)
        logger.info(
            "railway: department %s running as service %s (deployment %s)",
            context.department_id,
            service_id,
            deployment["id"],
        )
        return {
            "runtime": "railway",
            "serviceId": service_id,
            "serviceName": service_name(context.department_id),
            "deploymentId": deployment["id"],
            "url": f"https://{domain}",
            "upstream": f"{domain}:443",
            "resources": self._resource_hints(context),
        }

    def delete(self, context: DepartmentContext) -> None:
        gql = self._client(())
        for service_id in self._find_services(gql, context.department_id):
            gql.execute(M_SERVICE_DELETE, {"id": service_id})
            logger.info(
                "railway: deleted service %s of department %s", service_id, context.department_id
            )

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        gql = self._client(())
        try:
            service_ids = self._find_services(gql, context.department_id)
            if not service_ids:
                return self._check_result(watch, False, "service missing", {})
            latest = self._latest_deployment(gql, service_ids[0])
        except ProviderError as exc:
            return self._check_result(watch, False, str(exc), {})
        if latest is None:
            return self._check_result(watch, False, "no deployment", {"serviceId": service_ids[0]})
        data = {
            "serviceId": service_ids[0],
            "deploymentId": latest["id"],
            "status": latest["status"],
        }
        healthy = latest["status"] == "SUCCESS"
        return self._check_result(watch, healthy, f"latest deployment {latest['status']}", data)

    # -- service ------------------------------------------------------------------------

    def _client(self, sensitive: Iterable[str]) -> RailwayGraphQL:
        gql = RailwayGraphQL(self._api_url, self._api_token, self._session)
        gql.add_sensitive(sensitive)
        return gql

    def _find_services(self, gql: RailwayGraphQL, department_id: str) -> list[str]:
        data = gql.execute(Q_PROJECT_SERVICES, {"id": self.project_id})
        wanted = service_name(department_id)
        edges = data["project"]["services"]["edges"]
        return [e["node"]["id"] for e in edges if e["node"]["name"] == wanted]

    def _find_or_create_service(self, gql: RailwayGraphQL, department_id: str) -> str:
        existing = self._find_services(gql, department_id)
        if existing:
            if len(existing) > 1:
                # Two racing creates can both succeed; keep using the first, delete removes all.
                logger.warning(
                    "railway: %d services named %s", len(existing), service_name(department_id)
                )
            return existing[0]
        data = gql.execute(
            M_SERVICE_CREATE,
            {
                "input": {
                    "projectId": self.project_id,
                    "environmentId": self.environment_id,
                    "name": service_name(department_id),
                    "source": {"image": self.image},
                }
            },
        )
        service_id = data["serviceCreate"]["id"]
        logger.info("railway: created service %s for department %s", service_id, department_id)
        return service_id

    # -- variables ----------------------------------------------------------------------

    def _sensitive_values(self, desired: dict[str, str]) -> list[str]:
        """Values to scrub from error text: the secrets, and operator-supplied base values
        long enough to be credentials (short ones like "info" would only garble messages)."""
        values = [desired[v] for v in SECRET_VARIABLES.values() if v in desired]
        values += [v for v in self.variables_base.values() if isinstance(v, str) and len(v) >= 8]
        return values

    def _desired_variables(self, context: DepartmentContext) -> dict[str, str]:
        variables = dict(self.variables_base)
        variables["AGENT_DEPARTMENT_ID"] = context.department_id
        variables["AGENT_CONFIG_JSON"] = json.dumps(
            context.config, sort_keys=True, separators=(",", ":"), default=str
        )
        for secret_name, variable in SECRET_VARIABLES.items():
            value = context.secrets.get(secret_name)
            if value:
                variables[variable] = value
        return variables

    def _variables_changed(
        self, gql: RailwayGraphQL, service_id: str, desired: dict[str, str]
    ) -> bool:
        current = (
            gql.execute(
                Q_VARIABLES,
                {
                    "projectId": self.project_id,
                    "environmentId": self.environment_id,
                    "serviceId": service_id,
                },
            )["variables"]
            or {}
        )
        return any(current.get(k) != v for k, v in desired.items())

    def _upsert_variables(
        self, gql: RailwayGraphQL, service_id: str, desired: dict[str, str]
    ) -> None:
        gql.execute(
            M_VARIABLES_UPSERT,
            {
                "input": {
                    "projectId": self.project_id,
                    "environmentId": self.environment_id,
                    "serviceId": service_id,
                    "variables": desired,
                    # The driver deploys once itself; a second, implicit deploy would race it.
                    "skipDeploys": True,
                }
            },
        )
        logger.info("railway: set variables %s on service %s", sorted(desired), service_id)

    # -- deployment ---------------------------------------------------------------------

    def _converge_deployment(
        self, gql: RailwayGraphQL, service_id: str, desired: dict[str, str]
    ) -> dict[str, Any]:
        """Reuse or wait for a deployment that already has these variables, else deploy.

        A retry after a deploy timeout must wait for the build it started rather than start
        a new one, or a slow build would never finish.
        """
        changed = self._variables_changed(gql, service_id, desired)
        if changed:
            self._upsert_variables(gql, service_id, desired)
        latest = None if changed else self._latest_deployment(gql, service_id)
        if latest and latest["status"] == "SUCCESS":
            return latest
        if latest and latest["status"] in IN_PROGRESS:
            return self._wait_for(gql, latest["id"])
        deployment_id = gql.execute(
            M_DEPLOY, {"serviceId": service_id, "environmentId": self.environment_id}
        )["serviceInstanceDeployV2"]
        logger.info("railway: deploying service %s as deployment %s", service_id, deployment_id)
        return self._wait_for(gql, deployment_id)

    def _latest_deployment(self, gql: RailwayGraphQL, service_id: str) -> dict[str, Any] | None:
        data = gql.execute(
            Q_LATEST_DEPLOYMENT,
            {
                "first": 1,
                "input": {
                    "projectId": self.project_id,
                    "environmentId": self.environment_id,
                    "serviceId": service_id,
                },
            },
        )
        edges = data["deployments"]["edges"]
        return edges[0]["node"] if edges else None

    def _wait_for(self, gql: RailwayGraphQL, deployment_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.deploy_timeout
        while True:
            deployment = gql.execute(Q_DEPLOYMENT, {"id": deployment_id})["deployment"]
            status = deployment["status"]
            if status == "SUCCESS":
                return deployment
            if status in BROKEN or status not in IN_PROGRESS:
                raise ProviderError(f"railway deployment {deployment_id} ended {status}")
            if time.monotonic() >= deadline:
                raise TransientProviderError(
                    f"railway deployment {deployment_id} still {status} "
                    f"after {self.deploy_timeout:g}s"
                )
            self._sleep(self.poll_interval)

    # -- domain, outputs ----------------------------------------------------------------

    def _ensure_domain(self, gql: RailwayGraphQL, service_id: str) -> str:
        data = gql.execute(
            Q_DOMAINS,
            {
                "projectId": self.project_id,
                "environmentId": self.environment_id,
                "serviceId": service_id,
            },
        )
        existing = data["domains"]["serviceDomains"]
        if existing:
            return existing[0]["domain"]
        domain_input: dict[str, Any] = {
            "serviceId": service_id,
            "environmentId": self.environment_id,
        }
        if self.target_port is not None:
            domain_input["targetPort"] = self.target_port
        created = gql.execute(M_DOMAIN_CREATE, {"input": domain_input})["serviceDomainCreate"]
        logger.info("railway: service %s reachable at %s", service_id, created["domain"])
        return created["domain"]

    @staticmethod
    def _resource_hints(context: DepartmentContext) -> dict[str, Any]:
        hints = context.config.get("resources") or {}
        return {
            "cpu": hints.get("cpu"),
            "memory": hints.get("memory"),
            "applied": False,
            "note": "Railway limits come from the workspace plan, not per service",
        }

    @staticmethod
    def _check_result(
        watch: Stopwatch, healthy: bool, detail: str, data: dict[str, Any]
    ) -> CheckResult:
        return CheckResult(
            name="container_process",
            healthy=healthy,
            latency_ms=watch.elapsed_ms,
            detail=detail,
            data=data,
        )
