"""A local stand-in for Railway's public GraphQL API, for tests and offline runs.

It serves the subset of ``https://backboard.railway.com/graphql/v2`` that
``app.providers.container_railway`` uses, with the same operation names, argument and input
shapes and answer shapes as Railway's documentation (docs.railway.com/integrations/api/
manage-services, manage-deployments, manage-variables, manage-domains), executed by a real
GraphQL engine (graphql-core), so a misspelt field or wrong input type fails here as it would
against Railway.

Behaviour copied from Railway:

* ``Authorization: Bearer <token>``; a missing or wrong token answers ``"Not Authorized"`` in a
  GraphQL ``errors`` array with HTTP 200 (pass ``unauthorized_status=401`` for a hard 401).
* Parse/validation errors answer 400; execution errors answer 200 with ``errors``.
* Rate limiting answers 429 with ``Retry-After`` and ``X-RateLimit-*`` headers.
* Deployments go BUILDING -> DEPLOYING -> SUCCESS over ``build_seconds + deploy_seconds``;
  a newer deployment turns older in-progress ones REMOVED, and an older SUCCESS REMOVED once
  the newer one succeeds. ``variableCollectionUpsert`` redeploys unless ``skipDeploys``.

Assumed (not documented by Railway): service names need not be unique in a project, a service
has at most one Railway-provided domain, and ``serviceCreate`` starts no deployment unless
``deploy_on_create=True``.

Use from tests::

    with RailwayStandIn(token="t") as railway:
        railway.url                  # http://127.0.0.1:<port>/graphql/v2
        railway.fail_next_deployment("CRASHED")
        railway.rate_limit(count=2)

Or run it: ``python -m tests.support.railway_standin --port 8765 --token t``; control it with
``POST /_standin/fail-next {"status": "FAILED"}``, ``POST /_standin/rate-limit {"count": 3}``
and ``GET /_standin/state`` (variable names only, never values).
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from graphql import (
    GraphQLError,
    build_schema,
    execute,
    parse,
    validate,
)

GRAPHQL_PATH = "/graphql/v2"
DEFAULT_TOKEN = "standin-token"

SCHEMA_SDL = """
scalar DateTime
"A JSON object of variable name -> string value, as Railway's EnvironmentVariables scalar."
scalar EnvironmentVariables

enum DeploymentStatus {
  BUILDING CRASHED DEPLOYING FAILED INITIALIZING NEEDS_APPROVAL QUEUED
  REMOVED REMOVING SKIPPED SLEEPING SUCCESS WAITING
}

type Service { id: String! name: String! projectId: String! createdAt: DateTime! }
type ProjectServicesConnectionEdge { node: Service! cursor: String! }
type ProjectServicesConnection { edges: [ProjectServicesConnectionEdge!]! }
type Project { id: String! name: String! services: ProjectServicesConnection! }

type Deployment {
  id: String! status: DeploymentStatus! createdAt: DateTime!
  projectId: String! serviceId: String environmentId: String!
  staticUrl: String url: String
}
type QueryDeploymentsConnectionEdge { node: Deployment! cursor: String! }
type QueryDeploymentsConnection { edges: [QueryDeploymentsConnectionEdge!]! }

type ServiceDomain {
  id: String! domain: String! suffix: String serviceId: String! environmentId: String!
  targetPort: Int
}
type CustomDomain { id: String! domain: String! }
type AllDomains { serviceDomains: [ServiceDomain!]! customDomains: [CustomDomain!]! }

input DeploymentListStatusInput { successfulOnly: Boolean }
input DeploymentListInput {
  projectId: String environmentId: String serviceId: String status: DeploymentListStatusInput
}
input ServiceSourceInput { image: String repo: String }
input ServiceCreateInput {
  projectId: String! name: String environmentId: String branch: String icon: String
  source: ServiceSourceInput variables: EnvironmentVariables
}
input VariableCollectionUpsertInput {
  projectId: String! environmentId: String! serviceId: String
  variables: EnvironmentVariables! replace: Boolean = false skipDeploys: Boolean = false
}
input ServiceDomainCreateInput { serviceId: String! environmentId: String! targetPort: Int }

type Query {
  project(id: String!): Project!
  deployment(id: String!): Deployment!
  deployments(input: DeploymentListInput!, first: Int): QueryDeploymentsConnection!
  domains(projectId: String!, environmentId: String!, serviceId: String!): AllDomains!
  variables(
    projectId: String!, environmentId: String!, serviceId: String, unrendered: Boolean
  ): EnvironmentVariables!
}

type Mutation {
  serviceCreate(input: ServiceCreateInput!): Service!
  serviceDelete(id: String!, environmentId: String): Boolean!
  variableCollectionUpsert(input: VariableCollectionUpsertInput!): Boolean!
  serviceInstanceDeployV2(serviceId: String!, environmentId: String!, commitSha: String): String!
  serviceDomainCreate(input: ServiceDomainCreateInput!): ServiceDomain!
}
"""

SCHEMA = build_schema(SCHEMA_SDL)
IN_PROGRESS = ("BUILDING", "DEPLOYING")


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _error(message: str, code: str | None = None) -> dict[str, Any]:
    extensions: dict[str, Any] = {"traceId": uuid.uuid4().hex}
    if code:
        extensions["code"] = code
    return {"message": message, "extensions": extensions}


@dataclass
class _Service:
    id: str
    name: str
    image: str | None
    created_at: str = field(default_factory=_now_iso)
    variables: dict[str, str] = field(default_factory=dict)
    domain: dict[str, Any] | None = None


@dataclass
class _Deployment:
    id: str
    service_id: str
    outcome: str
    started: float = field(default_factory=time.monotonic)
    created_at: str = field(default_factory=_now_iso)
    removed: bool = False


class RailwayStandIn:
    """In-memory Railway project with one environment, served over real HTTP."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        project_id: str = "proj-standin",
        environment_id: str = "env-standin",
        build_seconds: float = 0.2,
        deploy_seconds: float = 0.2,
        unauthorized_status: int = 200,
        deploy_on_create: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.project_id = project_id
        self.environment_id = environment_id
        self.build_seconds = build_seconds
        self.deploy_seconds = deploy_seconds
        self.unauthorized_status = unauthorized_status
        self.deploy_on_create = deploy_on_create
        self._address = (host, port)
        self._lock = threading.RLock()
        self._services: dict[str, _Service] = {}
        self._deployments: list[_Deployment] = []  # oldest first
        self._fail_next: list[str] = []
        self._rate_limited = 0
        self._rate_limit_style = "http"
        self.operations: list[str] = []  # operation names received, for assertions
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> str:
        self._server = ThreadingHTTPServer(self._address, _Handler)
        self._server.standin = self  # type: ignore[attr-defined]
        # A short poll interval keeps stop() (and so every test teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RailwayStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{GRAPHQL_PATH}"

    # -- test controls ------------------------------------------------------------------

    def fail_next_deployment(self, status: str = "FAILED") -> None:
        """The next deployment builds, then ends in ``status`` (FAILED or CRASHED)."""
        if status not in ("FAILED", "CRASHED"):
            raise ValueError(status)
        with self._lock:
            self._fail_next.append(status)

    def rate_limit(self, count: int = 1, style: str = "http") -> None:
        """Refuse the next ``count`` requests: ``http`` = 429, ``graphql`` = 200 + errors."""
        with self._lock:
            self._rate_limited = count
            self._rate_limit_style = style

    # -- inspection ---------------------------------------------------------------------

    def services(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"id": s.id, "name": s.name, "image": s.image} for s in self._services.values()]

    def variables_of(self, service_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._services[service_id].variables)

    def deployments_of(self, service_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                self._deployment_view(d) for d in self._deployments if d.service_id == service_id
            ]

    def domain_of(self, service_id: str) -> str | None:
        with self._lock:
            domain = self._services[service_id].domain
            return domain["domain"] if domain else None

    def state(self) -> dict[str, Any]:
        """Everything but variable values, for the control endpoint."""
        with self._lock:
            return {
                "projectId": self.project_id,
                "environmentId": self.environment_id,
                "services": [
                    {
                        **svc,
                        "variableNames": sorted(self._services[svc["id"]].variables),
                        "domain": self.domain_of(svc["id"]),
                        "deployments": self.deployments_of(svc["id"]),
                    }
                    for svc in self.services()
                ],
            }

    # -- HTTP-independent request handling ----------------------------------------------

    def handle(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one POST to /graphql/v2 as ``(status, json body, extra headers)``."""
        refusal = self._refuse_rate_limited()
        if refusal is not None:
            return refusal
        if headers.get("authorization", "") != f"Bearer {self.token}":
            return (
                self.unauthorized_status,
                {"data": None, "errors": [_error("Not Authorized")]},
                {},
            )
        try:
            payload = json.loads(body or b"{}")
            document = parse(payload["query"])
        except (ValueError, KeyError, TypeError, GraphQLError) as exc:
            return 400, {"errors": [_error(f"Syntax Error: {exc}", "GRAPHQL_PARSE_FAILED")]}, {}
        problems = validate(SCHEMA, document)
        if problems:
            errors = [
                {**e.formatted, **_error(e.message, "GRAPHQL_VALIDATION_FAILED")} for e in problems
            ]
            return 400, {"errors": errors}, {}
        return self._execute(document, payload)

    def _execute(
        self, document: Any, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.operations.extend(
            d.name.value for d in document.definitions if getattr(d, "name", None)
        )
        with self._lock:
            result = execute(
                SCHEMA,
                document,
                root_value=_Root(self),
                variable_values=payload.get("variables") or {},
                operation_name=payload.get("operationName"),
            )
        if result.errors and result.data is None and not any(e.path for e in result.errors):
            # Variable coercion failed before any field ran.
            return (
                400,
                {
                    "errors": [
                        {**e.formatted, **_error(e.message, "BAD_USER_INPUT")}
                        for e in result.errors
                    ]
                },
                {},
            )
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [
                {**e.formatted, **_error(e.message, "INTERNAL_SERVER_ERROR")} for e in result.errors
            ]
        return 200, body, {}

    def _refuse_rate_limited(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        with self._lock:
            if self._rate_limited <= 0:
                return None
            self._rate_limited -= 1
            style = self._rate_limit_style
        if style == "graphql":
            return (
                200,
                {"data": None, "errors": [_error("Rate limit exceeded", "RATE_LIMITED")]},
                {},
            )
        headers = {"Retry-After": "1", "X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0"}
        return (
            429,
            {"errors": [_error("You are being ratelimited. Please try again later")]},
            headers,
        )

    # -- model (called with the lock held) ----------------------------------------------

    def require_scope(self, project_id: str | None, environment_id: str | None = None) -> None:
        if project_id is not None and project_id != self.project_id:
            raise GraphQLError("Project not found")
        if environment_id is not None and environment_id != self.environment_id:
            raise GraphQLError("Environment not found")

    def require_service(self, service_id: str | None) -> _Service:
        service = self._services.get(service_id or "")
        if service is None:
            raise GraphQLError("Service not found")
        return service

    def create_service(self, name: str, image: str | None, variables: dict[str, str]) -> _Service:
        service = _Service(id=str(uuid.uuid4()), name=name, image=image, variables=dict(variables))
        self._services[service.id] = service
        if self.deploy_on_create and image:
            self.start_deployment(service.id)
        return service

    def delete_service(self, service_id: str) -> None:
        self.require_service(service_id)
        del self._services[service_id]
        self._deployments = [d for d in self._deployments if d.service_id != service_id]

    def start_deployment(self, service_id: str) -> _Deployment:
        for older in self._deployments:
            if older.service_id == service_id and self._status(older) in IN_PROGRESS:
                older.removed = True
        outcome = self._fail_next.pop(0) if self._fail_next else "SUCCESS"
        deployment = _Deployment(id=str(uuid.uuid4()), service_id=service_id, outcome=outcome)
        self._deployments.append(deployment)
        return deployment

    def find_deployment(self, deployment_id: str) -> _Deployment:
        for deployment in self._deployments:
            if deployment.id == deployment_id:
                return deployment
        raise GraphQLError("Deployment not found")

    def list_deployments(self, service_id: str | None) -> list[_Deployment]:
        newest_first = reversed(self._deployments)
        return [d for d in newest_first if service_id is None or d.service_id == service_id]

    def create_domain(self, service: _Service, target_port: int | None) -> dict[str, Any]:
        if service.domain is not None:
            raise GraphQLError("Service already has a Railway-provided domain")
        suffix = "up.railway.app"
        service.domain = {
            "id": str(uuid.uuid4()),
            "domain": f"{service.name}-production-{secrets.token_hex(2)}.{suffix}",
            "suffix": suffix,
            "serviceId": service.id,
            "environmentId": self.environment_id,
            "targetPort": target_port,
        }
        return service.domain

    def _status(self, deployment: _Deployment) -> str:
        if deployment.removed:
            return "REMOVED"
        age = time.monotonic() - deployment.started
        if age < self.build_seconds:
            return "BUILDING"
        if age < self.build_seconds + self.deploy_seconds:
            return "DEPLOYING"
        if deployment.outcome == "SUCCESS" and self._superseded(deployment):
            return "REMOVED"
        return deployment.outcome

    def _superseded(self, deployment: _Deployment) -> bool:
        later = self._deployments[self._deployments.index(deployment) + 1 :]
        return any(
            d.service_id == deployment.service_id and not d.removed and self._status(d) == "SUCCESS"
            for d in later
        )

    def _deployment_view(self, deployment: _Deployment) -> dict[str, Any]:
        status = self._status(deployment)
        service = self._services.get(deployment.service_id)
        domain = service.domain["domain"] if service and service.domain else None
        live = status == "SUCCESS" and domain
        return {
            "id": deployment.id,
            "status": status,
            "createdAt": deployment.created_at,
            "projectId": self.project_id,
            "serviceId": deployment.service_id,
            "environmentId": self.environment_id,
            "staticUrl": domain if live else None,
            "url": f"https://{domain}" if live else None,
        }


class _Root:
    """Root resolvers; graphql-core calls ``root.<field>(info, **args)`` for each top field."""

    def __init__(self, standin: RailwayStandIn) -> None:
        self._s = standin

    # queries

    def project(self, _info: Any, id: str) -> dict[str, Any]:
        self._s.require_scope(id)
        edges = [
            {"cursor": svc["id"], "node": {**svc, "projectId": id, "createdAt": _now_iso()}}
            for svc in self._s.services()
        ]
        return {"id": id, "name": "standin", "services": {"edges": edges}}

    def deployment(self, _info: Any, id: str) -> dict[str, Any]:
        return self._s._deployment_view(self._s.find_deployment(id))

    def deployments(
        self, _info: Any, input: dict[str, Any], first: int | None = None
    ) -> dict[str, Any]:
        self._s.require_scope(input.get("projectId"), input.get("environmentId"))
        views = [
            self._s._deployment_view(d) for d in self._s.list_deployments(input.get("serviceId"))
        ]
        if (input.get("status") or {}).get("successfulOnly"):
            views = [v for v in views if v["status"] == "SUCCESS"]
        views = views[:first] if first is not None else views
        return {"edges": [{"cursor": v["id"], "node": v} for v in views]}

    def domains(
        self, _info: Any, projectId: str, environmentId: str, serviceId: str
    ) -> dict[str, Any]:
        self._s.require_scope(projectId, environmentId)
        service = self._s.require_service(serviceId)
        return {"serviceDomains": [service.domain] if service.domain else [], "customDomains": []}

    def variables(
        self,
        _info: Any,
        projectId: str,
        environmentId: str,
        serviceId: str | None = None,
        unrendered: bool | None = None,
    ) -> dict[str, str]:
        self._s.require_scope(projectId, environmentId)
        return dict(self._s.require_service(serviceId).variables) if serviceId else {}

    # mutations

    def serviceCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._s.require_scope(input["projectId"], input.get("environmentId"))
        variables = _string_map(input.get("variables") or {})
        name = input.get("name") or f"service-{secrets.token_hex(3)}"
        service = self._s.create_service(name, (input.get("source") or {}).get("image"), variables)
        return {
            "id": service.id,
            "name": service.name,
            "projectId": self._s.project_id,
            "createdAt": service.created_at,
        }

    def serviceDelete(self, _info: Any, id: str, environmentId: str | None = None) -> bool:
        self._s.delete_service(id)
        return True

    def variableCollectionUpsert(self, _info: Any, input: dict[str, Any]) -> bool:
        self._s.require_scope(input["projectId"], input["environmentId"])
        service = self._s.require_service(input.get("serviceId"))
        variables = _string_map(input["variables"])
        if input.get("replace"):
            service.variables.clear()
        service.variables.update(variables)
        if not input.get("skipDeploys") and self._s.list_deployments(service.id):
            self._s.start_deployment(service.id)
        return True

    def serviceInstanceDeployV2(
        self, _info: Any, serviceId: str, environmentId: str, commitSha: str | None = None
    ) -> str:
        self._s.require_scope(None, environmentId)
        self._s.require_service(serviceId)
        return self._s.start_deployment(serviceId).id

    def serviceDomainCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._s.require_scope(None, input["environmentId"])
        service = self._s.require_service(input["serviceId"])
        return self._s.create_domain(service, input.get("targetPort"))


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        # Like Railway's input coercion errors, this quotes the offending value back.
        raise GraphQLError(f"Variables must be an object of string values, got {value!r}")
    return dict(value)


class _Handler(BaseHTTPRequestHandler):
    server_version = "railway-standin/1"

    def do_POST(self) -> None:
        standin: RailwayStandIn = self.server.standin  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/_standin/"):
            self._control(standin, body)
            return
        if self.path != GRAPHQL_PATH:
            self._send(404, {"errors": [_error("Not Found")]})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra = standin.handle(headers, body)
        self._send(status, payload, extra)

    def do_GET(self) -> None:
        standin: RailwayStandIn = self.server.standin  # type: ignore[attr-defined]
        if self.path == "/_standin/state":
            self._send(200, standin.state())
        else:
            self._send(405, {"errors": [_error("Use POST")]})

    def _control(self, standin: RailwayStandIn, body: bytes) -> None:
        args = json.loads(body or b"{}")
        if self.path == "/_standin/fail-next":
            standin.fail_next_deployment(args.get("status", "FAILED"))
        elif self.path == "/_standin/rate-limit":
            standin.rate_limit(int(args.get("count", 1)), args.get("style", "http"))
        else:
            self._send(404, {"error": "unknown control"})
            return
        self._send(200, {"ok": True})

    def _send(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines are noise in test output."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local stand-in for Railway's GraphQL API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--project-id", default="proj-standin")
    parser.add_argument("--environment-id", default="env-standin")
    parser.add_argument("--build-seconds", type=float, default=3.0)
    parser.add_argument("--deploy-seconds", type=float, default=2.0)
    parser.add_argument("--unauthorized-status", type=int, default=200, choices=(200, 401))
    args = parser.parse_args(argv)
    standin = RailwayStandIn(
        token=args.token,
        project_id=args.project_id,
        environment_id=args.environment_id,
        build_seconds=args.build_seconds,
        deploy_seconds=args.deploy_seconds,
        unauthorized_status=args.unauthorized_status,
        host=args.host,
        port=args.port,
    )
    standin.start()
    print(
        json.dumps(
            {"url": standin.url, "projectId": args.project_id, "environmentId": args.environment_id}
        ),
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
