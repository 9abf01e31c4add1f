"""Root resolvers of the stand-in: graphql-core calls ``root.<field>(info, **args)``.

Only the fields the driver (and the Railway CLI's equivalents of its operations) use are
resolved; anything else in Railway's schema validates but answers "Not implemented by the
stand-in", so a new operation cannot pass here silently without a model behind it.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError

from tests.support.railway_model import LIVE, Deployment, Project, Service, now_iso


class Root:
    def __init__(self, project: Project, project_id: str, environment_id: str) -> None:
        self._p = project
        self._project_id = project_id
        self._environment_id = environment_id

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def unimplemented(_info: Any, **_args: Any) -> Any:
            raise GraphQLError(f"{name}: not implemented by the stand-in")

        return unimplemented

    def scope(self, project_id: str | None, environment_id: str | None = None) -> None:
        if project_id is not None and project_id != self._project_id:
            raise GraphQLError("Project not found")
        if environment_id is not None and environment_id != self._environment_id:
            raise GraphQLError("Environment not found")

    # -- views ------------------------------------------------------------------------

    def deployment_view(self, deployment: Deployment) -> dict[str, Any]:
        service = self._p.services.get(deployment.service_id)
        domain = service.domain["domain"] if service and service.domain else None
        live = deployment.status in LIVE and domain
        return {
            "id": deployment.id,
            "status": deployment.status,
            "createdAt": deployment.created_at,
            "updatedAt": now_iso(),
            "projectId": self._project_id,
            "serviceId": deployment.service_id,
            "environmentId": self._environment_id,
            "staticUrl": domain if live else None,
            "url": f"https://{domain}" if live else None,
            "meta": {"image": deployment.image},
        }

    def _service_view(self, service: Service) -> dict[str, Any]:
        return {
            "id": service.id,
            "name": service.name,
            "projectId": self._project_id,
            "createdAt": service.created_at,
            "updatedAt": now_iso(),
        }

    # -- queries ----------------------------------------------------------------------

    def project(self, _info: Any, id: str) -> dict[str, Any]:
        self.scope(id)
        edges = [{"cursor": s.id, "node": self._service_view(s)} for s in self._p.services.values()]
        return {"id": id, "name": "standin", "services": {"edges": edges}}

    def projectToken(self, _info: Any) -> dict[str, Any]:
        return {"projectId": self._project_id, "environmentId": self._environment_id}

    def serviceInstance(self, _info: Any, serviceId: str, environmentId: str) -> dict[str, Any]:
        self.scope(None, environmentId)
        service = self._p.require_service(serviceId)
        deployments = self._p.of(serviceId)
        return {
            "id": f"{serviceId}:{environmentId}",
            "serviceId": serviceId,
            "serviceName": service.name,
            "environmentId": environmentId,
            "source": {"image": service.image, "repo": None},
            "latestDeployment": self.deployment_view(deployments[-1]) if deployments else None,
            "activeDeployments": [self.deployment_view(d) for d in deployments if d.status in LIVE],
        }

    def serviceInstanceLimits(
        self, _info: Any, serviceId: str, environmentId: str
    ) -> dict[str, float]:
        self.scope(None, environmentId)
        # An untouched service runs with the plan's limits (Hobby: 8 vCPU, 8 GB).
        return {"vCPUs": 8.0, "memoryGB": 8.0, **self._p.require_service(serviceId).limits}

    def deployment(self, _info: Any, id: str) -> dict[str, Any]:
        return self.deployment_view(self._p.find(id))

    def deployments(
        self, _info: Any, input: dict[str, Any], first: int | None = None, **_page: Any
    ) -> dict[str, Any]:
        self.scope(input.get("projectId"), input.get("environmentId"))
        wanted = input.get("status") or {}
        newest_first = reversed(self._p.deployments)
        picked = [
            d
            for d in newest_first
            if input.get("serviceId") in (None, d.service_id)
            and d.status in wanted.get("in", [d.status])
            and d.status not in wanted.get("notIn", [])
        ]
        picked = picked[:first] if first is not None else picked
        edges = [{"cursor": d.id, "node": self.deployment_view(d)} for d in picked]
        return {"edges": edges, "pageInfo": {"hasNextPage": False, "hasPreviousPage": False}}

    def domains(
        self, _info: Any, projectId: str, environmentId: str, serviceId: str
    ) -> dict[str, Any]:
        self.scope(projectId, environmentId)
        service = self._p.require_service(serviceId)
        return {"serviceDomains": [service.domain] if service.domain else [], "customDomains": []}

    def variables(
        self,
        _info: Any,
        projectId: str,
        environmentId: str,
        serviceId: str | None = None,
        unrendered: bool | None = None,
    ) -> dict[str, str]:
        self.scope(projectId, environmentId)
        return dict(self._p.require_service(serviceId).variables) if serviceId else {}

    # -- mutations --------------------------------------------------------------------

    def serviceCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self.scope(input["projectId"], input.get("environmentId"))
        image = (input.get("source") or {}).get("image")
        name = input.get("name") or f"service-{now_iso()}"
        service = self._p.create_service(name, image, string_map(input.get("variables") or {}))
        if self._p.deploy_on_create and image:
            self._p.start_deployment(service)
        return self._service_view(service)

    def serviceConnect(self, _info: Any, id: str, input: dict[str, Any]) -> dict[str, Any]:
        service = self._p.require_service(id)
        if input.get("image"):
            service.image = input["image"]
        return self._service_view(service)

    def serviceInstanceUpdate(
        self,
        _info: Any,
        serviceId: str,
        input: dict[str, Any],
        environmentId: str | None = None,
    ) -> bool:
        self.scope(None, environmentId)
        service = self._p.require_service(serviceId)
        if (input.get("source") or {}).get("image"):
            service.image = input["source"]["image"]
        return True  # a changed source takes effect at the next deployment, as on Railway

    def serviceInstanceLimitsUpdate(self, _info: Any, input: dict[str, Any]) -> bool:
        self.scope(None, input["environmentId"])
        service = self._p.require_service(input["serviceId"])
        for key in ("vCPUs", "memoryGB"):
            if input.get(key) is not None:
                service.limits[key] = float(input[key])
        return True

    def serviceDelete(self, _info: Any, id: str, environmentId: str | None = None) -> bool:
        self.scope(None, environmentId)
        self._p.delete_service(id)
        return True

    def variableCollectionUpsert(self, _info: Any, input: dict[str, Any]) -> bool:
        self.scope(input["projectId"], input["environmentId"])
        service = self._p.require_service(input.get("serviceId"))
        variables = string_map(input["variables"])
        if input.get("replace"):
            service.variables.clear()
        service.variables.update(variables)
        if not input.get("skipDeploys") and self._p.of(service.id):
            self._p.start_deployment(service)
        return True

    def serviceInstanceDeployV2(
        self, _info: Any, serviceId: str, environmentId: str, commitSha: str | None = None
    ) -> str:
        self.scope(None, environmentId)
        return self._p.start_deployment(self._p.require_service(serviceId)).id

    def serviceDomainCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self.scope(None, input["environmentId"])
        service = self._p.require_service(input["serviceId"])
        self._p.create_domain(service, self._environment_id, input.get("targetPort"))
        assert service.domain is not None
        return {**service.domain, "projectId": self._project_id, "syncStatus": "ACTIVE"}

    def serviceDomainDelete(self, _info: Any, id: str) -> bool:
        self._p.delete_domain(id)
        return True


def string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        # Like Railway's input coercion errors, this quotes the offending value back.
        raise GraphQLError(f"Variables must be an object of string values, got {value!r}")
    return dict(value)
