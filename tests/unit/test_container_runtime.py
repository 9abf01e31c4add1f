"""Decisions of the container runtimes, without an engine or a stack."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.config import Settings, load_settings
from app.docker_host import engine_answers
from app.providers.agent_inputs import AgentInputs, AgentTarget, gather_inputs
from app.providers.agent_users import MAX_USER_NAME, user_name
from app.providers.base import DepartmentContext
from app.providers.docker_agent import container_spec, settings_archive

SECRETS = {"database_password": "pw-secret-1", "oauth_client_secret": "cs-secret-2"}


class Secrets:
    def get(self, name: str) -> str | None:
        return SECRETS.get(name)

    def put(self, name: str, value: str) -> None:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError


def _inputs(memory: str = "256Mi", cpu: str = "500m") -> AgentInputs:
    context = DepartmentContext(
        "hr",
        {"resources": {"memory": memory, "cpu": cpu}},
        {"create_database": {"role": "hr_role", "schema": "hr_tenant"},
         "create_oauth": {"clientId": "dept-hr"}},
        Secrets(),
    )  # fmt: skip
    return gather_inputs(context, AgentTarget("127.0.0.1", 5432, "t", "http://x/oauth/token"))


def test_the_container_spec_carries_limits_and_hardening_but_no_secret() -> None:
    spec = container_spec("hr", _inputs(), "v1", "127.0.0.1", 41000)
    assert spec["mem_limit"] == spec["memswap_limit"] == 256 * 1024**2
    assert spec["nano_cpus"] == 500_000_000
    assert spec["read_only"] and spec["cap_drop"] == ["ALL"] and spec["user"] == "10001:10001"
    assert spec["restart_policy"] == {"Name": "unless-stopped"}
    assert spec["labels"]["department-id"] == "hr" and spec["labels"]["config-version"] == "v1"
    text = json.dumps(spec, default=str)
    assert all(secret not in text for secret in SECRETS.values())


def test_settings_travel_as_a_0400_file_owned_by_the_agent() -> None:
    with tarfile.open(fileobj=io.BytesIO(settings_archive(_inputs()))) as archive:
        [member] = archive.getmembers()
        assert (member.name, member.mode, member.uid) == ("settings.json", 0o400, 10001)
        content = json.loads(archive.extractfile(member).read())  # type: ignore[union-attr]
    assert content["AGENT_OAUTH_CLIENT_SECRET"] == SECRETS["oauth_client_secret"]


def test_a_changed_limit_or_secret_changes_the_config_version() -> None:
    assert _inputs().digest("img") == _inputs().digest("img")
    assert _inputs(memory="512Mi").digest("img") != _inputs().digest("img")
    assert _inputs().digest("other-image") != _inputs().digest("img")


@pytest.mark.parametrize("department_id", ["hr", "a" * 31, "x" * 100])
def test_agent_user_names_fit_and_stay_distinct(department_id: str) -> None:
    name = user_name(department_id)
    assert len(name) <= MAX_USER_NAME and name.startswith("po-")
    assert user_name(department_id + "z") != name


@pytest.fixture
def fake_ping(tmp_path: Path) -> Iterator[str]:
    """A unix socket answering Docker's /_ping with 200, as an engine would."""
    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        with server:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.0 200 OK\r\n\r\nOK")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"unix://{path}"
    thread.join(timeout=5)


def _settings(**env: str) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CONTAINER_RUNTIME", raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        return load_settings({"SECRETS_KEY": Fernet.generate_key().decode()})


def test_runtime_defaults_to_docker_only_where_an_engine_answers(
    fake_ping: str, tmp_path: Path
) -> None:
    assert not engine_answers(f"unix://{tmp_path}/none.sock")
    assert _settings(DOCKER_HOST=f"unix://{tmp_path}/none.sock").CONTAINER_RUNTIME == "local"
    assert _settings(DOCKER_HOST=fake_ping).CONTAINER_RUNTIME == "docker"
    chosen = _settings(DOCKER_HOST=f"unix://{tmp_path}/none.sock", CONTAINER_RUNTIME="docker")
    assert chosen.CONTAINER_RUNTIME == "docker"
