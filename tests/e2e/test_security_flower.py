"""Flower can start any task (a rollback of a live job) or shut the workers down:
it must ask for credentials on every page and API, and refuse to run without."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests

from tests.e2e.test_flower import FLOWER, FLOWER_AUTH, flower  # noqa: F401 - the Flower fixture
from tests.support import stack

PAGES = ["/", "/workers", "/tasks", "/broker", "/metrics", "/api/tasks", "/api/workers"]
ACTIONS = [
    "/api/task/async-apply/provisioning.rollback",
    "/api/task/send-task/provisioning.sweep",
    "/api/worker/shutdown/nobody@nowhere",
    "/api/worker/pool/restart/nobody@nowhere",
]


@pytest.mark.usefixtures("flower")
@pytest.mark.parametrize("auth", [None, ("admin", "wrong"), ("intruder", FLOWER_AUTH[1])])
def test_every_flower_page_and_action_needs_the_credentials(
    auth: tuple[str, str] | None,
) -> None:
    answers = {page: requests.get(FLOWER + page, auth=auth, timeout=10) for page in PAGES}
    answers |= {path: requests.post(FLOWER + path, auth=auth, timeout=10) for path in ACTIONS}
    opened = {path: r.status_code for path, r in answers.items() if r.status_code != 401}
    assert opened == {}


@pytest.mark.usefixtures("flower")
def test_flower_answers_with_the_credentials() -> None:
    for page in ("/", "/metrics", "/api/workers"):
        assert requests.get(FLOWER + page, auth=FLOWER_AUTH, timeout=30).status_code == 200, page


def test_flower_refuses_to_start_without_credentials() -> None:
    env = {name: value for name, value in os.environ.items() if name != "FLOWER_BASIC_AUTH"}
    result = subprocess.run(
        [str(stack.VENV_BIN / "celery"), "-A", "flower_app", "flower", "--port=1"],
        cwd=stack.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr
