"""A create whose name is held by an earlier attempt's container (still being
made on the engine after the client gave up) waits for it, removes it and
creates again (app/providers/docker_create.py)."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from app.providers.base import TransientProviderError
from app.providers.docker_create import create_named


class Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.reason = "test"
        self.url = "http+docker://localhost/containers/create"

    def json(self) -> dict[str, str]:
        return {"message": "test"}


def api_error(status: int) -> docker.errors.APIError:
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls("engine said no", response=Response(status))  # type: ignore[arg-type]


class Container:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def remove(self, force: bool, v: bool) -> None:
        self.events.append(f"remove force={force} v={v}")


class Containers:
    def __init__(self, creates: list[Any], gets: list[Any]) -> None:
        self.creates, self.gets, self.events = creates, gets, []

    def create(self, image: str, **spec: Any) -> Any:
        self.events.append(f"create {spec['name']}")
        outcome = self.creates.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def get(self, name: str) -> Any:
        self.events.append(f"get {name}")
        outcome = self.gets.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Client:
    def __init__(self, containers: Containers) -> None:
        self.containers = containers


SPEC = {"name": "dept-hr"}


def test_a_free_name_is_created_once() -> None:
    containers = Containers(["new"], [])
    assert create_named(Client(containers), "agent:1", SPEC, patience=5) == "new"
    assert containers.events == ["create dept-hr"]


def test_a_name_held_by_a_container_still_being_made_is_waited_for_and_freed() -> None:
    containers = Containers([api_error(409), "new"], [])
    held = Container(containers.events)
    containers.gets = [api_error(404), api_error(404), held]
    assert create_named(Client(containers), "agent:1", SPEC, patience=5) == "new"
    assert containers.events == [
        "create dept-hr",
        "get dept-hr",
        "get dept-hr",
        "get dept-hr",
        "remove force=True v=True",
        "create dept-hr",
    ]


def test_a_name_never_freed_is_a_transient_failure() -> None:
    containers = Containers([api_error(409)], [api_error(404)] * 100)
    with pytest.raises(TransientProviderError, match="still held"):
        create_named(Client(containers), "agent:1", SPEC, patience=0.6)


def test_other_engine_errors_are_not_swallowed() -> None:
    containers = Containers([api_error(500)], [])
    with pytest.raises(docker.errors.APIError):
        create_named(Client(containers), "agent:1", SPEC, patience=5)
