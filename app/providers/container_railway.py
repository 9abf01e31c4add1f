"""Container runtime driver that runs a department's agent as a Railway service.

The service is ``dept-<departmentId>`` in one project and environment, built from one
container image (``RAILWAY_IMAGE``), configured by variables only. ``create`` converges it:
creates it with its image and variables in ``serviceCreate``'s input (as the Railway CLI
does, so a deployment Railway starts on creation already has its configuration), then brings
the image (``serviceInstanceUpdate`` source), variables and resource limits of an existing
service to the wanted ones, and deploys once when anything changed. Each deployment status
is handled as ``railway_status`` decides; a sleeping service is healthy and never
redeployed. Every call spends at most a stated number of requests (``RailwayGraphQL``).

The GraphQL documents are in ``railway_operations`` (each validated against Railway's real
schema by the tests); the client, its budget and rate-limit handling in ``railway_client``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

from app.providers import railway_operations as ops
from app.providers.agent_config import AgentEndpoints
from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    TransientProviderError,
)
from app.providers.railway_client import ACCOUNT, RailwayGraphQL
from app.providers.railway_desired import Desired, desired_state, limits_differ
from app.providers.railway_status import (
    STABLE,
    Phase,
    blocked,
    judge_health,
    phase_of,
    poll_delays,
    result,
)

logger = logging.getLogger(__name__)


def service_name(department_id: str) -> str:
    """The one Railway service a department owns; the name is how retries find it again."""
    return f"dept-{department_id}"


def address_of(domain: str) -> tuple[str, str]:
    """(url, gateway upstream). Railway's domains are served over TLS on 443; a domain with
    an explicit port (what the local stand-in hands out) is dialled as given."""
    if ":" in domain:
        return f"http://{domain}", domain
    return f"https://{domain}", f"{domain}:443"


class RailwayContainerProvider:
    name = "container"

    def __init__(
        self,
        *,
        api_url: str,
        api_token: str,
        project_id: str,
        environment_id: str,
        image: str,
        endpoints: AgentEndpoints,
        token_kind: str = ACCOUNT,
        variables_base: dict[str, str] | None = None,
        poll_interval: float = 3.0,
        poll_max_interval: float = 15.0,
        deploy_timeout: float = 45.0,
        request_budget: int = 30,
        max_retry_wait: float = 30.0,
        target_port: int | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client_options: dict[str, Any] = {
            "api_url": api_url,
            "token": api_token,
            "token_kind": token_kind,
            "session": session or requests.Session(),
            "budget": request_budget,
            "max_retry_wait": max_retry_wait,
            "sleep": sleep,
        }
        self.project_id = project_id
        self.environment_id = environment_id
        self.image = image
        self.endpoints = endpoints
        self.variables_base = dict(variables_base or {})
        self.delays = poll_delays(poll_interval, poll_max_interval, deploy_timeout)
        self.target_port = target_port
        self._sleep = sleep

    # -- Provider interface -------------------------------------------------------------

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        desired = desired_state(context, self.endpoints, self.variables_base)
        gql = self._client(desired.sensitive)
        service_id, created = self._find_or_create(gql, context.department_id, desired)
        state = gql.execute(ops.Q_SERVICE_STATE, self._scope(service_id))
        changed = self._apply_changes(gql, service_id, state, desired, created)
        deployment = self._settle(gql, service_id, state, changed)
        url, upstream = address_of(self._ensure_domain(gql, service_id))
        logger.info(
            "railway: department %s is service %s, deployment %s %s (%d requests)",
            context.department_id,
            service_id,
            deployment["id"],
            deployment["status"],
            gql.spent,
        )
        return {
            "runtime": "railway",
            "serviceId": service_id,
            "serviceName": service_name(context.department_id),
            "deploymentId": deployment["id"],
            "status": deployment["status"],
            "image": self.image,
            "url": url,
            "upstream": upstream,
            "resources": {**desired.limits, "applied": bool(desired.limits)},
        }

    def delete(self, context: DepartmentContext) -> None:
        gql = self._client(())
        for service_id in self._find_services(gql, context.department_id):
            domains = gql.execute(ops.Q_DOMAINS, self._scope(service_id))["domains"]
            for domain in domains["serviceDomains"]:
                gql.execute(ops.M_DOMAIN_DELETE, {"id": domain["id"]})
            gql.execute(ops.M_SERVICE_DELETE, {"id": service_id})
            logger.info("railway: deleted service %s of %s", service_id, context.department_id)

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        gql = self._client(())
        try:
            service_ids = self._find_services(gql, context.department_id)
            if not service_ids:
                return result(watch, False, "service missing", {})
            instance = gql.execute(ops.Q_SERVICE_HEALTH, self._instance(service_ids[0]))
        except ProviderError as exc:
            return result(watch, False, str(exc), {})
        return judge_health(watch, service_ids[0], instance["serviceInstance"], self.image)

    # -- service ------------------------------------------------------------------------

    def _client(self, sensitive: Iterable[str]) -> RailwayGraphQL:
        gql = RailwayGraphQL(**self._client_options)
        gql.add_sensitive(sensitive)
        return gql

    def _scope(self, service_id: str) -> dict[str, str]:
        return {
            "projectId": self.project_id,
            "environmentId": self.environment_id,
            "serviceId": service_id,
        }

    def _find_services(self, gql: RailwayGraphQL, department_id: str) -> list[str]:
        data = gql.execute(ops.Q_PROJECT_SERVICES, {"id": self.project_id})
        wanted = service_name(department_id)
        edges = data["project"]["services"]["edges"]
        return [e["node"]["id"] for e in edges if e["node"]["name"] == wanted]

    def _find_or_create(
        self, gql: RailwayGraphQL, department_id: str, desired: Desired
    ) -> tuple[str, bool]:
        existing = self._find_services(gql, department_id)
        if existing:
            if len(existing) > 1:  # two racing creates; keep the first, delete removes all
                logger.warning("railway: %d services named dept-%s", len(existing), department_id)
            return existing[0], False
        service_input = {
            "projectId": self.project_id,
            "environmentId": self.environment_id,
            "name": service_name(department_id),
            "source": {"image": self.image},
            "variables": desired.variables,
        }
        created = gql.execute(ops.M_SERVICE_CREATE, {"input": service_input})["serviceCreate"]
        logger.info("railway: created service %s for %s", created["id"], department_id)
        return created["id"], True

    def _apply_changes(
        self,
        gql: RailwayGraphQL,
        service_id: str,
        state: dict[str, Any],
        desired: Desired,
        created: bool,
    ) -> list[str]:
        """Bring image, variables and limits to the wanted ones; name what changed."""
        changed: list[str] = []
        source = (state["serviceInstance"] or {}).get("source") or {}
        if source.get("image") != self.image:
            update = {"source": {"image": self.image}}
            gql.execute(ops.M_SOURCE_UPDATE, {**self._instance(service_id), "input": update})
            changed.append("image")
        current = state.get("variables") or {}
        if any(current.get(k) != v for k, v in desired.variables.items()):
            upsert: dict[str, Any] = {**self._scope(service_id), "variables": desired.variables}
            # The driver deploys once itself; an implicit deploy per change would race it.
            upsert["skipDeploys"] = True
            gql.execute(ops.M_VARIABLES_UPSERT, {"input": upsert})
            changed.append("variables")
        if desired.limits and limits_differ(state.get("serviceInstanceLimits"), desired.limits):
            limits = {**self._instance(service_id), **desired.limits}
            gql.execute(ops.M_LIMITS_UPDATE, {"input": limits})
            changed.append("limits")
        if changed:
            logger.info("railway: service %s changed: %s", service_id, ", ".join(changed))
        return changed

    def _instance(self, service_id: str) -> dict[str, str]:
        return {"serviceId": service_id, "environmentId": self.environment_id}

    # -- deployment ---------------------------------------------------------------------

    def _settle(
        self, gql: RailwayGraphQL, service_id: str, state: dict[str, Any], changed: list[str]
    ) -> dict[str, Any]:
        """Reuse the latest deployment when nothing changed and it is live or on its way
        (a retry after a deploy timeout waits for the build it started); else deploy."""
        latest = (state["serviceInstance"] or {}).get("latestDeployment")
        phase = phase_of(latest["status"]) if latest else None
        if latest and not changed:
            if phase in STABLE:
                if phase is Phase.ASLEEP:
                    logger.info("railway: service %s is asleep; not redeployed", service_id)
                return dict(latest)
            if phase is Phase.PENDING:
                return self._wait_for(gql, service_id, latest["id"])
            if phase is Phase.BLOCKED:
                raise blocked(latest["id"])
        deployment_id = gql.execute(ops.M_DEPLOY, self._instance(service_id))
        deployment_id = deployment_id["serviceInstanceDeployV2"]
        logger.info("railway: deploying service %s as deployment %s", service_id, deployment_id)
        return self._wait_for(gql, service_id, deployment_id)

    def _wait_for(self, gql: RailwayGraphQL, service_id: str, deployment_id: str) -> dict[str, Any]:
        delays = iter(self.delays)
        while True:
            deployment = gql.execute(ops.Q_DEPLOYMENT, {"id": deployment_id})["deployment"]
            status = deployment["status"]
            phase = phase_of(status)
            if phase in STABLE:
                return dict(deployment)
            if phase is Phase.SUPERSEDED:
                deployment_id = self._successor(gql, service_id, deployment_id, status)
                continue
            if phase is Phase.BLOCKED:
                raise blocked(deployment_id)
            if phase is Phase.FAILED:
                raise ProviderError(f"railway deployment {deployment_id} ended {status}")
            delay = next(delays, None)
            if delay is None:
                waited = sum(self.delays)
                raise TransientProviderError(
                    f"railway deployment {deployment_id} still {status} after {waited:g}s"
                )
            self._sleep(delay)

    def _successor(
        self, gql: RailwayGraphQL, service_id: str, deployment_id: str, status: str
    ) -> str:
        """A newer deployment replaced ours (someone deployed too): follow it."""
        instance = gql.execute(ops.Q_SERVICE_HEALTH, self._instance(service_id))
        latest = (instance["serviceInstance"] or {}).get("latestDeployment")
        if not latest or latest["id"] == deployment_id:
            raise ProviderError(f"railway deployment {deployment_id} ended {status}")
        logger.info("railway: deployment %s %s; following %s", deployment_id, status, latest["id"])
        return str(latest["id"])

    # -- domain -------------------------------------------------------------------------

    def _ensure_domain(self, gql: RailwayGraphQL, service_id: str) -> str:
        existing = gql.execute(ops.Q_DOMAINS, self._scope(service_id))["domains"]
        if existing["serviceDomains"]:
            return str(existing["serviceDomains"][0]["domain"])
        domain_input: dict[str, Any] = self._instance(service_id)
        if self.target_port is not None:
            domain_input["targetPort"] = self.target_port
        created = gql.execute(ops.M_DOMAIN_CREATE, {"input": domain_input})["serviceDomainCreate"]
        logger.info("railway: service %s reachable at %s", service_id, created["domain"])
        return str(created["domain"])
