"""LocalContainerProvider with real processes, a real PostgreSQL and a real HTTP token peer.

Every test gets its own department id, tenant role/schema and run directory;
the fixtures drop the tenant and kill anything left carrying the department's
marker, even when the provider under test misbehaves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from psycopg2 import sql

from app.providers.agent_resources import MEMORY_FLOOR_BYTES, parse_cpu, parse_memory, plan_cpu
from app.providers.base import ProviderError
from app.providers.container_local import PROJECT_ROOT, LocalContainerProvider
from tests.providers.conftest import Department, _config, bare_context
from tests.support.agent_env import (
    admin_connection,
    pids_with_marker,
)

slow = pytest.mark.slow
MiB = 1024**2


def get(outputs: dict[str, Any], path: str) -> requests.Response:
    return requests.get(outputs["url"] + path, timeout=20)


def proc_text(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")


def address_space_limit(pid: int) -> tuple[str, str]:
    for line in proc_text(pid, "limits").splitlines():
        if line.startswith("Max address space"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no 'Max address space' line in /proc/<pid>/limits")


def nice_value(pid: int) -> int:
    stat = proc_text(pid, "stat")
    return int(stat[stat.rindex(")") + 2 :].split()[16])


# --- the agent serves ---------------------------------------------------------------------


@slow
def test_create_starts_an_agent_that_serves_index_and_health(department: Department) -> None:
    outputs = department.provider.create(department.context)

    port = outputs["port"]
    assert outputs["runtime"] == "local"
    assert outputs["upstream"] == f"127.0.0.1:{port}"
    assert outputs["url"] == f"http://127.0.0.1:{port}"
    assert outputs["pid"] in pids_with_marker(department.department_id)
    index = get(outputs, "/")
    assert index.status_code == 200
    assert index.json() == {
        "departmentId": department.department_id,
        "departmentName": "Agent Test Department",
        "workflows": ["intake"],
        "tools": ["search", "mail"],
        "toolBehaviours": {"search": "search", "mail": "mail"},
    }
    health = get(outputs, "/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    # The agent really logged in as the tenant role, not as postgres.
    assert body["checks"]["database"]["role"] == department.tenant.role
    assert body["checks"]["database"]["schema"] == department.tenant.schema
    assert body["checks"]["oauth"]["ok"] is True
    assert department.token.granted >= 1
    for secret in department.secret_values():
        assert secret not in index.text
        assert secret not in health.text


@slow
def test_create_again_returns_the_running_agent(department: Department) -> None:
    first = department.provider.create(department.context)
    processes = pids_with_marker(department.department_id)

    second = department.provider.create(department.context)

    assert second == first
    assert pids_with_marker(department.department_id) == processes
    assert get(second, "/health").status_code == 200


@slow
def test_credentials_are_in_the_environment_never_on_a_command_line(
    department: Department,
) -> None:
    outputs = department.provider.create(department.context)
    get(outputs, "/health")  # let the agent log whatever it logs when it works

    pids = pids_with_marker(department.department_id)
    assert outputs["pid"] in pids
    assert pids == [outputs["pid"]], "the agent is one process (department_agent/serve.py)"
    for pid in pids:
        cmdline = proc_text(pid, "cmdline")
        for secret in department.secret_values():
            assert secret not in cmdline
    environ = proc_text(outputs["pid"], "environ").split("\0")
    assert f"AGENT_OAUTH_CLIENT_SECRET={department.token.client_secret}" in environ
    assert any(
        entry.startswith("AGENT_DATABASE_URL=") and department.tenant.password in entry
        for entry in environ
    )
    # The orchestrator's own environment is not handed to a tenant's process.
    assert "PYTEST_CURRENT_TEST" not in "\n".join(environ)
    log = (department.run_dir / "agents" / f"{department.department_id}.log").read_text()
    for secret in department.secret_values():
        assert secret not in log
        assert secret not in department.pidfile.read_text()


@slow
def test_health_is_503_when_the_token_endpoint_refuses_the_client(
    department: Department,
) -> None:
    outputs = department.provider.create(department.context)
    department.token.client_secret = "rotated-" + uuid.uuid4().hex

    health = get(outputs, "/health")

    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["oauth"]["ok"] is False
    assert "401" in body["checks"]["oauth"]["detail"]
    assert "invalid_client" in body["checks"]["oauth"]["detail"]
    assert department.token.refused >= 1
    for secret in department.secret_values():
        assert secret not in health.text
    result = department.provider.check(department.context)
    assert result.healthy is False
    assert "oauth" in result.detail and "503" in result.detail


@slow
def test_health_is_503_when_the_tenant_schema_is_gone(department: Department) -> None:
    outputs = department.provider.create(department.context)
    department.tenant.drop_schema()

    health = get(outputs, "/health")

    assert health.status_code == 503
    database = health.json()["checks"]["database"]
    assert database["ok"] is False
    assert department.tenant.schema in database["detail"]
    assert department.tenant.password not in health.text


@slow
def test_a_changed_password_restarts_the_agent_with_it(department: Department) -> None:
    first = department.provider.create(department.context)
    new_password = "pw2-" + uuid.uuid4().hex
    connection = admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(department.tenant.role), sql.Literal(new_password)
                )
            )
    finally:
        connection.close()
    department.secrets.put("database_password", new_password)

    second = department.provider.create(department.context)

    assert second["pid"] != first["pid"]
    assert first["pid"] not in pids_with_marker(department.department_id)
    assert new_password in proc_text(second["pid"], "environ")
    assert get(second, "/health").status_code == 200


# --- resource hints -----------------------------------------------------------------------


@slow
@pytest.mark.parametrize(
    ("memory", "cpu", "expected_limit", "expected_nice"),
    [
        ("64Mi", "500m", MEMORY_FLOOR_BYTES, 5),  # below the floor: raised to it
        ("1Gi", "2", 1024 * MiB, 0),
    ],
)
def test_resource_hints_are_applied_to_the_processes(
    department: Department, memory: str, cpu: str, expected_limit: int, expected_nice: int
) -> None:
    department.context.config = _config(memory=memory, cpu=cpu)

    outputs = department.provider.create(department.context)

    assert outputs["memoryRequestedBytes"] == parse_memory(memory)
    assert outputs["memoryLimitBytes"] == expected_limit
    assert outputs["memoryFloorBytes"] == MEMORY_FLOOR_BYTES
    assert outputs["cpu"]["cores"] == parse_cpu(cpu)
    assert outputs["cpu"]["nice"] == expected_nice
    for pid in pids_with_marker(department.department_id):
        assert address_space_limit(pid) == (str(expected_limit), str(expected_limit))
        assert nice_value(pid) == expected_nice
        if outputs["cpu"]["affinity"] != "all":
            assert os.sched_getaffinity(pid) == set(outputs["cpu"]["affinity"])
    # Still fully working inside the limit (psycopg2 and requests loaded and used).
    assert get(outputs, "/health").status_code == 200


def test_quantities_parse_like_kubernetes() -> None:
    assert parse_memory("512Mi") == 512 * MiB
    assert parse_memory("2Gi") == 2 * 1024 * MiB
    assert parse_memory("1G") == 10**9
    assert parse_memory("1048576") == MiB
    assert parse_memory(None) is None
    assert parse_cpu("500m") == 0.5
    assert parse_cpu("0.5") == 0.5
    assert parse_cpu(2) == 2.0
    assert parse_cpu(None) is None
    for bad_memory in ("lots", "-1Mi", "0", "12Qi"):
        with pytest.raises(ProviderError):
            parse_memory(bad_memory)
    for bad_cpu in ("fast", "0", "-1", "nan", "xm"):
        with pytest.raises(ProviderError):
            parse_cpu(bad_cpu)


def test_fractional_cpu_is_a_lower_priority_on_one_cpu() -> None:
    plan = plan_cpu("250m", "dept-a")
    assert plan.nice == 8
    if len(os.sched_getaffinity(0)) > 1:
        assert plan.cpus is not None and len(plan.cpus) == 1
    assert plan_cpu(None, "dept-a").as_output()["affinity"] == "all"


# --- lifetime -----------------------------------------------------------------------------

CREATE_AND_EXIT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from app.providers.base import DepartmentContext
    from app.providers.container_local import LocalContainerProvider
    from tests.support.agent_env import MemorySecrets

    spec = json.loads(os.environ["TEST_AGENT_SPEC"])
    provider = LocalContainerProvider(run_dir=Path(spec["run_dir"]), **spec["provider"])
    context = DepartmentContext(
        spec["department_id"], spec["config"], spec["resources"], MemorySecrets(spec["secrets"])
    )
    print(json.dumps(provider.create(context)))
    """
)


@slow
def test_agent_outlives_the_process_that_created_it(department: Department) -> None:
    spec = {
        "run_dir": str(department.run_dir),
        "provider": department.provider_args,
        "department_id": department.department_id,
        "config": department.context.config,
        "resources": department.context.resources,
        "secrets": department.secrets.values,
    }
    creator = subprocess.run(
        [sys.executable, "-c", CREATE_AND_EXIT],
        env={**os.environ, "TEST_AGENT_SPEC": json.dumps(spec), "PYTHONPATH": str(PROJECT_ROOT)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outputs = json.loads(creator.stdout.strip().splitlines()[-1])

    # The creator has exited and been reaped; its agent lives on, in its own session.
    assert get(outputs, "/health").status_code == 200
    pid = outputs["pid"]
    assert os.getsid(pid) == pid
    assert os.getpgid(pid) == pid
    assert department.provider.create(department.context) == outputs


@slow
def test_delete_stops_the_agent_and_can_be_repeated(department: Department) -> None:
    outputs = department.provider.create(department.context)

    department.provider.delete(department.context)

    assert pids_with_marker(department.department_id) == []
    assert not department.pidfile.exists()
    with pytest.raises(requests.ConnectionError):
        get(outputs, "/")
    department.provider.delete(department.context)
    department.provider.delete(bare_context(department.department_id))


@slow
def test_delete_does_not_signal_a_process_the_pidfile_wrongly_names(
    department: Department,
) -> None:
    department.provider.create(department.context)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        record = json.loads(department.pidfile.read_text())
        department.pidfile.write_text(json.dumps({**record, "pid": bystander.pid}))

        department.provider.delete(department.context)

        assert bystander.poll() is None, "an unrelated process was signalled"
        assert pids_with_marker(department.department_id) == []
        assert not department.pidfile.exists()
    finally:
        bystander.kill()
        bystander.wait()


@slow
def test_delete_finds_an_agent_without_a_pidfile(department: Department) -> None:
    department.provider.create(department.context)
    department.pidfile.unlink()
    assert pids_with_marker(department.department_id) != []

    department.provider.delete(bare_context(department.department_id))

    assert pids_with_marker(department.department_id) == []


@slow
def test_check_follows_the_agent(department: Department) -> None:
    before = department.provider.check(department.context)
    assert before.name == "container_process"
    assert before.healthy is False
    assert "no usable pidfile" in before.detail

    outputs = department.provider.create(department.context)
    running = department.provider.check(department.context)
    assert running.healthy is True, running.detail
    assert running.data["pid"] == outputs["pid"]
    assert running.data["health"]["status"] == "ok"

    department.provider.delete(department.context)
    after = department.provider.check(department.context)
    assert after.healthy is False


# --- refusals -----------------------------------------------------------------------------


@slow
@pytest.mark.parametrize(
    "remove",
    ["database_password", "oauth_client_secret", "create_database", "create_oauth"],
)
def test_create_refuses_without_its_inputs(department: Department, remove: str) -> None:
    department.secrets.delete(remove)
    department.context.resources.pop(remove, None)

    with pytest.raises(ProviderError, match="missing"):
        department.provider.create(department.context)

    assert pids_with_marker(department.department_id) == []


@slow
def test_an_agent_that_dies_at_start_is_reported_with_its_log(department: Department) -> None:
    interpreter = "/usr/bin/python3"
    probe = subprocess.run([interpreter, "-c", "import waitress, psycopg2"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{interpreter} has the agent's packages: it cannot stand for a broken runtime")
    provider = LocalContainerProvider(
        run_dir=department.run_dir, python_executable=interpreter, **department.provider_args
    )

    with pytest.raises(ProviderError) as raised:
        provider.create(department.context)

    message = str(raised.value)
    assert "ModuleNotFoundError: No module named" in message
    for secret in department.secret_values():
        assert secret not in message
    assert pids_with_marker(department.department_id) == []


@pytest.mark.parametrize("department_id", ["../etc", "a/b", "", "-x"])
def test_ids_that_are_not_safe_file_names_are_refused(tmp_path: Path, department_id: str) -> None:
    provider = LocalContainerProvider(
        run_dir=tmp_path,
        database_host="127.0.0.1",
        database_port=5432,
        database_name="postgres",
        oauth_token_url="http://127.0.0.1:9/token",
    )
    with pytest.raises(ProviderError, match="invalid department id"):
        provider.delete(bare_context(department_id))
    assert provider.check(bare_context(department_id)).healthy is False
