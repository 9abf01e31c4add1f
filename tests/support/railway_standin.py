"""A local stand-in for Railway's public GraphQL API, serving Railway's real schema.

Every request is parsed and validated against Railway's own schema (the introspection the
official CLI ships, ``/work/shared/spec/railway-schema.json``, copied as
``tests/support/railway-schema.json``) before anything runs, so an operation Railway would
refuse is refused here, with Railway's error shape: HTTP 400 and
``{"errors": [{"message", "locations", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}``.
The model behind it (``railway_model``) walks all 13 deployment statuses; with a runtime
(``railway_runtime``) each successful deployment really runs the image's process behind the
service's domain.

Behaviour copied from Railway:

* account and workspace tokens in ``Authorization: Bearer``, project tokens in
  ``Project-Access-Token``; a wrong or misplaced token answers ``"Not Authorized"`` in a
  GraphQL ``errors`` array with HTTP 200 (``unauthorized_status=401`` for a hard 401);
* execution errors answer 200 with ``errors``; rate limiting 429 with ``Retry-After``.

Assumed (not documented by Railway): service names need not be unique, a service has at
most one Railway-provided domain, ``serviceCreate`` deploys only with ``deploy_on_create``,
``serviceInstanceUpdate`` and ``serviceInstanceLimitsUpdate`` take effect at the next deploy.

Use from tests::

    with RailwayStandIn(token="t") as railway:
        railway.url                    # http://127.0.0.1:<port>/graphql/v2
        railway.script_next_deployment("CRASHED")
        railway.rate_limit(count=2, retry_after=1)

Or run it: ``python -m tests.support.railway_standin --port 8765 --token t``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from graphql import GraphQLError, build_client_schema, execute, parse, validate

from tests.support.railway_http import serve
from tests.support.railway_model import OUTCOMES, Project, Runtime, Script
from tests.support.railway_resolvers import Root

GRAPHQL_PATH = "/graphql/v2"
DEFAULT_TOKEN = "standin-token"
SCHEMA_FILE = Path(__file__).with_name("railway-schema.json")
SCHEMA = build_client_schema(json.loads(SCHEMA_FILE.read_text())["data"])
Reply = tuple[int, dict[str, Any], dict[str, str]]


def error(message: str, code: str | None = None, located: Any = None) -> dict[str, Any]:
    """Railway's error shape: message, locations/path when known, extensions.code."""
    extensions: dict[str, Any] = {"traceId": uuid.uuid4().hex}
    if code:
        extensions["code"] = code
    where = {k: v for k, v in (located or {}).items() if k in ("locations", "path") and v}
    return {"message": message, **where, "extensions": extensions}


class RailwayStandIn:
    """One in-memory Railway project with one environment, served over real HTTP."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        project_token: str | None = None,
        project_id: str = "proj-standin",
        environment_id: str = "env-standin",
        build_seconds: float = 0.2,
        deploy_seconds: float = 0.2,
        step_seconds: float = 0.05,
        unauthorized_status: int = 200,
        deploy_on_create: bool = False,
        runtime: Runtime | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.project_token = project_token
        self.project_id = project_id
        self.environment_id = environment_id
        self.unauthorized_status = unauthorized_status
        self.timings = {
            "QUEUED": step_seconds,
            "INITIALIZING": step_seconds,
            "BUILDING": build_seconds,
            "DEPLOYING": deploy_seconds,
            "REMOVING": step_seconds,
        }
        self.model = Project(timings=self.timings, runtime=runtime)
        if runtime is not None:
            runtime.waker = self._wake  # type: ignore[attr-defined]
        self.model.deploy_on_create = deploy_on_create
        self.lock = threading.RLock()
        self._address = (host, port)
        self._rate_limited = 0
        self._rate_limit_style = ("http", 1)
        self.operations: list[str] = []  # operation names received, for assertions
        self.requests = 0  # GraphQL requests answered, rate-limited ones included
        self._server: Any = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> str:
        self._server = serve(self, self._address, GRAPHQL_PATH)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        with self.lock:
            for service_id in list(self.model.services):
                self.model.delete_service(service_id)

    def __enter__(self) -> RailwayStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        return str(self._server.url)

    # -- test controls ------------------------------------------------------------------

    def script_next_deployment(
        self, outcome: str = "SUCCESS", extra: list[tuple[str, float]] | None = None
    ) -> None:
        """The next deployment ends in ``outcome`` after the usual phases plus ``extra``
        ones (e.g. ``[("WAITING", 0.5)]`` after QUEUED)."""
        if outcome not in OUTCOMES:
            raise ValueError(outcome)
        with self.lock:
            self.model.scripts.append(Script(outcome, list(extra or [])))

    def fail_next_deployment(self, status: str = "FAILED") -> None:
        self.script_next_deployment(status)

    def sleep_service(self, service_id: str) -> None:
        """Railway's serverless sleep: the live deployment goes SLEEPING, its process stops,
        and the next request to its domain wakes it."""
        with self.lock:
            self.model.sleep(service_id)

    def _wake(self, service_id: str) -> None:
        """A connection reached a service's domain: wake it if asleep, then let it in."""
        with self.lock:
            instance = self.model.wake(service_id)
        deadline = time.monotonic() + 20
        while instance is not None and not instance.ready() and time.monotonic() < deadline:
            time.sleep(0.05)

    def rate_limit(self, count: int = 1, style: str = "http", retry_after: int = 1) -> None:
        """Refuse the next ``count`` requests: ``http`` = 429 + Retry-After,
        ``graphql`` = 200 with a rate-limit error."""
        with self.lock:
            self._rate_limited = count
            self._rate_limit_style = (style, retry_after)

    # -- inspection ---------------------------------------------------------------------

    def services(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"id": s.id, "name": s.name, "image": s.image, "limits": dict(s.limits)}
                for s in self.model.services.values()
            ]

    def variables_of(self, service_id: str) -> dict[str, str]:
        with self.lock:
            return dict(self.model.require_service(service_id).variables)

    def deployments_of(self, service_id: str) -> list[dict[str, Any]]:
        with self.lock:
            self.model.tick()
            root = self._root()
            return [
                {**root.deployment_view(d), "image": d.image, "variables": dict(d.variables)}
                for d in self.model.of(service_id)
            ]

    def domain_of(self, service_id: str) -> str | None:
        with self.lock:
            domain = self.model.require_service(service_id).domain
            return domain["domain"] if domain else None

    def instance_of(self, service_id: str) -> Any:
        """The running process of the service's live deployment (runtime only), or None."""
        with self.lock:
            self.model.tick()
            live = [d for d in self.model.of(service_id) if d.status == "SUCCESS"]
            return live[-1].instance if live else None

    # -- request handling ---------------------------------------------------------------

    def handle(self, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one POST to /graphql/v2 as ``(status, json body, extra headers)``."""
        with self.lock:
            self.requests += 1
        refusal = self._refuse_rate_limited()
        if refusal is not None:
            return refusal
        if not self._authorized(headers):
            return self.unauthorized_status, {"errors": [error("Not Authorized")]}, {}
        try:
            payload = json.loads(body or b"{}")
            document = parse(payload["query"])
        except (ValueError, KeyError, TypeError, GraphQLError) as exc:
            return 400, {"errors": [error(f"Syntax Error: {exc}", "GRAPHQL_PARSE_FAILED")]}, {}
        problems = validate(SCHEMA, document)
        if problems:
            errors = [error(e.message, "GRAPHQL_VALIDATION_FAILED", e.formatted) for e in problems]
            return 400, {"errors": errors}, {}
        return self._execute(document, payload)

    def _authorized(self, headers: dict[str, str]) -> bool:
        bearer = headers.get("authorization", "")
        project = headers.get("project-access-token", "")
        if self.project_token and project == self.project_token:
            return not bearer
        return bearer == f"Bearer {self.token}" and not project

    def _root(self) -> Root:
        return Root(self.model, self.project_id, self.environment_id)

    def _execute(self, document: Any, payload: dict[str, Any]) -> Reply:
        self.operations.extend(
            d.name.value for d in document.definitions if getattr(d, "name", None)
        )
        with self.lock:
            self.model.tick()
            result = execute(
                SCHEMA,
                document,
                root_value=self._root(),
                variable_values=payload.get("variables") or {},
                operation_name=payload.get("operationName"),
            )
        if result.errors and result.data is None and not any(e.path for e in result.errors):
            # Variable coercion failed before any field ran.
            errors = [error(e.message, "BAD_USER_INPUT", e.formatted) for e in result.errors]
            return 400, {"errors": errors}, {}
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [
                error(e.message, "INTERNAL_SERVER_ERROR", e.formatted) for e in result.errors
            ]
        return 200, body, {}

    def _refuse_rate_limited(self) -> Reply | None:
        with self.lock:
            if self._rate_limited <= 0:
                return None
            self._rate_limited -= 1
            style, retry_after = self._rate_limit_style
        if style == "graphql":
            return 200, {"data": None, "errors": [error("Rate limit exceeded", "RATE_LIMITED")]}, {}
        headers = {
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": "1000",
            "X-RateLimit-Remaining": "0",
        }
        body = {"errors": [error("You are being ratelimited. Please try again later")]}
        return 429, body, headers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local stand-in for Railway's GraphQL API")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--project-token", default=None)
    args = parser.parse_args(argv)
    standin = RailwayStandIn(
        token=args.token, project_token=args.project_token, build_seconds=3.0, port=args.port
    )
    print(json.dumps({"url": standin.start(), "projectId": standin.project_id}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
