"""The stand-in's in-memory Railway project: services, deployments and their statuses.

Deployments walk Railway's statuses by the clock: QUEUED -> INITIALIZING -> BUILDING ->
DEPLOYING, then their outcome. A test may script the next deployment (an extra WAITING
phase, or an end in FAILED, CRASHED, SKIPPED or NEEDS_APPROVAL). A newer deployment skips
older ones still queued or waiting and removes older ones in progress; once it succeeds the
older live one goes REMOVING, then REMOVED. A live deployment can be put to SLEEPING and
wakes on request. With a runtime attached, DEPLOYING lasts until the image's process
answers (it CRASHES if it never does), like Railway's health check. All 13 statuses of
Railway's ``DeploymentStatus`` occur. Every method is called with the stand-in's lock held.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import GraphQLError

IN_PROGRESS = ("INITIALIZING", "BUILDING", "DEPLOYING")
NOT_STARTED = ("QUEUED", "WAITING")
LIVE = ("SUCCESS", "SLEEPING")
OUTCOMES = ("SUCCESS", "FAILED", "CRASHED", "SKIPPED", "NEEDS_APPROVAL")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Instance(Protocol):
    """A running deployment, as a runtime starts it."""

    def ready(self) -> bool: ...
    def failed(self) -> bool: ...


class Runtime(Protocol):
    def domain_for(self, service: Service) -> str: ...
    def launch(self, service: Service, deployment: Deployment) -> Instance: ...
    def stop(self, instance: Instance) -> None: ...
    def route(self, service: Service, instance: Instance | None) -> None: ...
    def forget(self, service: Service) -> None: ...


@dataclass
class Service:
    id: str
    name: str
    image: str | None
    variables: dict[str, str]
    limits: dict[str, float] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    domain: dict[str, Any] | None = None


@dataclass
class Deployment:
    id: str
    service_id: str
    image: str | None
    variables: dict[str, str]  # what the deployment runs with: a snapshot at its start
    limits: dict[str, float]
    phases: list[tuple[str, float]]
    outcome: str
    started: float = field(default_factory=time.monotonic)
    created_at: str = field(default_factory=now_iso)
    status: str = "QUEUED"
    since: float = field(default_factory=time.monotonic)
    instance: Instance | None = None


@dataclass
class Script:
    outcome: str = "SUCCESS"
    extra: list[tuple[str, float]] = field(default_factory=list)


class Project:
    def __init__(self, *, timings: dict[str, float], runtime: Runtime | None) -> None:
        self.timings = timings  # seconds per status: QUEUED, INITIALIZING, BUILDING, ...
        self.runtime = runtime
        self.services: dict[str, Service] = {}
        self.deployments: list[Deployment] = []  # oldest first
        self.scripts: list[Script] = []
        self.deploy_on_create = False

    # -- services ---------------------------------------------------------------------

    def require_service(self, service_id: str | None) -> Service:
        service = self.services.get(service_id or "")
        if service is None:
            raise GraphQLError("Service not found")
        return service

    def create_service(self, name: str, image: str | None, variables: dict[str, str]) -> Service:
        service = Service(id=str(uuid.uuid4()), name=name, image=image, variables=variables)
        self.services[service.id] = service
        return service

    def delete_service(self, service_id: str) -> None:
        service = self.require_service(service_id)
        for deployment in self.of(service_id):
            self._stop(deployment)
        if self.runtime is not None:
            self.runtime.forget(service)
        del self.services[service_id]
        self.deployments = [d for d in self.deployments if d.service_id != service_id]

    def create_domain(self, service: Service, environment_id: str, port: int | None) -> None:
        if service.domain is not None:
            raise GraphQLError("Service already has a Railway-provided domain")
        suffix = "up.railway.app"
        name = f"{service.name}-production-{secrets.token_hex(2)}.{suffix}"
        service.domain = {
            "id": str(uuid.uuid4()),
            "domain": self.runtime.domain_for(service) if self.runtime else name,
            "suffix": suffix,
            "serviceId": service.id,
            "environmentId": environment_id,
            "targetPort": port,
        }
        live = [d for d in self.of(service.id) if d.status == "SUCCESS" and d.instance]
        if self.runtime is not None and live:
            self.runtime.route(service, live[-1].instance)  # a domain added to a running service

    def delete_domain(self, domain_id: str) -> None:
        for service in self.services.values():
            if service.domain and service.domain["id"] == domain_id:
                service.domain = None
                return
        raise GraphQLError("Domain not found")

    # -- deployments ------------------------------------------------------------------

    def of(self, service_id: str) -> list[Deployment]:
        return [d for d in self.deployments if d.service_id == service_id]

    def find(self, deployment_id: str) -> Deployment:
        for deployment in self.deployments:
            if deployment.id == deployment_id:
                return deployment
        raise GraphQLError("Deployment not found")

    def start_deployment(self, service: Service) -> Deployment:
        now = time.monotonic()
        for older in self.of(service.id):
            if older.status in NOT_STARTED:
                self._end(older, "SKIPPED", now)
            elif older.status in IN_PROGRESS:
                self._end(older, "REMOVED", now)
        script = self.scripts.pop(0) if self.scripts else Script()
        t = self.timings
        phases = [("QUEUED", t["QUEUED"]), *script.extra]
        phases += [(s, t[s]) for s in ("INITIALIZING", "BUILDING", "DEPLOYING")]
        deployment = Deployment(
            id=str(uuid.uuid4()),
            service_id=service.id,
            image=service.image,
            variables=dict(service.variables),
            limits=dict(service.limits),
            phases=phases,
            outcome=script.outcome,
        )
        self.deployments.append(deployment)
        return deployment

    def sleep(self, service_id: str) -> None:
        live = [d for d in self.of(service_id) if d.status == "SUCCESS"]
        if not live:
            raise ValueError("no live deployment to put to sleep")
        self._stop(live[-1])
        self._set(live[-1], "SLEEPING", time.monotonic())

    def wake(self, service_id: str) -> Instance | None:
        """A request reached a sleeping service: start it again (the caller waits)."""
        service = self.services.get(service_id)
        asleep = [d for d in self.of(service_id) if d.status == "SLEEPING"]
        if service is None or not asleep or self.runtime is None:
            return None
        deployment = asleep[-1]
        deployment.instance = self.runtime.launch(service, deployment)
        self.runtime.route(service, deployment.instance)
        self._set(deployment, "SUCCESS", time.monotonic())
        return deployment.instance

    # -- the clock --------------------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        for deployment in list(self.deployments):
            if deployment.status == "REMOVING":
                if now - deployment.since >= self.timings["REMOVING"]:
                    self._set(deployment, "REMOVED", now)
            elif deployment.status in NOT_STARTED + IN_PROGRESS:
                self._advance(deployment, now)

    def _advance(self, deployment: Deployment, now: float) -> None:
        phase = self._scripted_phase(deployment, now)
        if phase is not None:
            if deployment.status != phase:
                self._set(deployment, phase, now)
        elif deployment.outcome != "SUCCESS":
            self._set(deployment, deployment.outcome, now)
        elif self._instance_answers(deployment, now):
            self._succeed(deployment, now)

    @staticmethod
    def _scripted_phase(deployment: Deployment, now: float) -> str | None:
        elapsed = now - deployment.started
        for status, seconds in deployment.phases:
            if elapsed < seconds:
                return status
            elapsed -= seconds
        return None

    def _instance_answers(self, deployment: Deployment, now: float) -> bool:
        """Without a runtime an image "runs" at once; with one, once its process answers."""
        if self.runtime is None:
            return True
        if deployment.instance is None:
            service = self.services[deployment.service_id]
            deployment.instance = self.runtime.launch(service, deployment)
        if deployment.instance.failed():
            self._end(deployment, "CRASHED", now)
            return False
        return deployment.instance.ready()

    def _succeed(self, deployment: Deployment, now: float) -> None:
        service = self.services[deployment.service_id]
        if self.runtime is not None:
            self.runtime.route(service, deployment.instance)
        self._set(deployment, "SUCCESS", now)
        for older in self.of(service.id):
            if older.status in LIVE and older.started < deployment.started:
                self._end(older, "REMOVING", now)

    def _end(self, deployment: Deployment, status: str, now: float) -> None:
        self._stop(deployment)
        self._set(deployment, status, now)

    def _stop(self, deployment: Deployment) -> None:
        if deployment.instance is not None and self.runtime is not None:
            self.runtime.stop(deployment.instance)
        deployment.instance = None

    @staticmethod
    def _set(deployment: Deployment, status: str, now: float) -> None:
        deployment.status, deployment.since = status, now
