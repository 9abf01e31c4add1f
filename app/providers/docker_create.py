"""Creating a department's container when an earlier attempt still holds its name.

The Docker SDK gives up on a call after the client's timeout, but the engine
goes on with the create it was asked for. On the vfs storage driver a create
copies the whole image, which during a burst takes longer than that timeout, so
the step's retry found the name taken (409) by a container not even listed yet,
and every retry after it failed the same way. The name is this department's own
(``dept-<id>``): wait for that container to appear, remove it, create again.
"""

from __future__ import annotations

import time
from typing import Any

import docker.errors

from app.providers.base import TransientProviderError

CONFLICT = 409


def create_named(client: Any, image: str, spec: dict[str, Any], patience: float) -> Any:
    try:
        return client.containers.create(image, **spec)
    except docker.errors.APIError as exc:
        if exc.status_code != CONFLICT:
            raise
    remove_when_visible(client, spec["name"], patience)
    return client.containers.create(image, **spec)


def remove_when_visible(client: Any, name: str, patience: float, poll: float = 0.5) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            client.containers.get(name).remove(force=True, v=True)
            return
        except docker.errors.NotFound:
            pass  # still being created: not registered under its name yet
        except docker.errors.APIError as exc:
            if exc.status_code != CONFLICT:  # 409 here: a removal already under way
                raise
        if time.monotonic() >= deadline:
            raise TransientProviderError(
                f"container name {name} is still held by an earlier create after {patience:g}s"
            )
        time.sleep(poll)
