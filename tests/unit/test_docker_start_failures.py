"""What the Docker runtime makes of an agent container that stops while starting:
a port taken under it is retried on another port; anything else fails the step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from app.providers.base import TransientProviderError
from app.providers.docker_agent import EXIT_PORT_TAKEN, exited_during_start, start_failure


@dataclass
class FakeContainer:
    status: str
    exit_code: int = 0
    restarts: int = 0
    name: str = "dept-x"
    attrs: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.attrs = {
            "RestartCount": self.restarts,
            "State": {"Status": self.status, "ExitCode": self.exit_code},
        }


@pytest.mark.parametrize(
    ("container", "stopped"),
    [
        (FakeContainer("running"), False),
        (FakeContainer("created"), False),
        (FakeContainer("exited", exit_code=1), True),
        (FakeContainer("dead"), True),
        # Its restart policy brought it back: still a start that failed.
        (FakeContainer("restarting", exit_code=EXIT_PORT_TAKEN, restarts=1), True),
        (FakeContainer("running", restarts=2), True),
    ],
)
def test_a_container_that_stopped_or_restarted_during_start_is_seen(
    container: FakeContainer, stopped: bool
) -> None:
    assert exited_during_start(container) is stopped


def test_a_taken_port_is_retried() -> None:
    failure = start_failure(FakeContainer("restarting", EXIT_PORT_TAKEN, 1), "tail")

    assert isinstance(failure, TransientProviderError)
    assert "retrying on another port" in str(failure) and "tail" in str(failure)


def test_a_container_running_again_after_a_restart_gets_the_retry() -> None:
    assert isinstance(start_failure(FakeContainer("running", 0, 3), ""), TransientProviderError)


@pytest.mark.parametrize("exit_code", [1, 3, 137])
def test_any_other_exit_fails_the_step_with_its_reason(exit_code: int) -> None:
    failure = start_failure(FakeContainer("exited", exit_code), "the log")

    assert not isinstance(failure, TransientProviderError)
    assert f"exit code {exit_code}" in str(failure) and "the log" in str(failure)
