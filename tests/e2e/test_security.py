"""Security matrix: tokens on every endpoint, department isolation, hostile
input, secrets kept out of every log/response/queue, and hardening headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import config
from app.providers.faults import FaultInjector
from tests.conftest import (
    API_PORT,
    TEST_DB,
    Stack,
    department_payload,
    make_token,
    new_department_id,
)
from tests.e2e.conftest import leftovers, submit, wait_for_job
from tests.e2e.test_api_contract import _forged

BASE_URL = f"http://127.0.0.1:{API_PORT}"
HOSTILE_NAME = 'O\'Brien "R&D"; DROP TABLE departments;-- <script>x</script> Ünïcødé ✓ 部門 \\ %s'
HOSTILE_CONFIG = {"note": "'; DROP SCHEMA public CASCADE; --", "path": "../../etc/passwd"}


# --- one real department the whole module reads ---------------------------------


@dataclass(frozen=True)
class Provisioned:
    payload: dict[str, Any]
    job_id: str

    @property
    def department_id(self) -> str:
        return str(self.payload["departmentId"])


@pytest.fixture(scope="module")
def provisioned(
    app: Flask, live_stack: Stack, admin_headers: dict[str, str]
) -> Iterator[Provisioned]:
    """Quotes, SQL and unicode in the free-text fields must provision like any other."""
    client = app.test_client()
    payload = department_payload(departmentName=HOSTILE_NAME, customConfig=HOSTILE_CONFIG)
    job = submit(client, admin_headers, payload)
    view = wait_for_job(job, timeout=180)
    assert view["status"] == "completed", view
    yield Provisioned(payload, job)
    response = client.delete(f"/api/deprovision/{payload['departmentId']}", headers=admin_headers)
    if response.status_code == 202:
        wait_for_job(str(response.get_json()["provisioningId"]), timeout=120)


# --- every /api endpoint, resolved against the live app ---------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    rule: str
    department_scoped: bool  # names a department or one of its jobs
    writes: bool

    def path(self, department_id: str, job_id: str) -> str:
        path = self.rule
        for marker, value in (
            ("<uuid:provisioning_id>", job_id),
            ("<department_id:department_id>", department_id),
            ("<string:department_id>", department_id),
        ):
            path = path.replace(marker, value)
        return path

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


# POSTs that only hand out a way to read (a live-stream ticket for one's own job).
READ_LIKE_POSTS = ("/events/ticket",)


def api_endpoints(app: Flask) -> list[Endpoint]:
    """Discovered from the URL map, so an endpoint added later is covered too."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append(
                Endpoint(
                    method,
                    rule.rule,
                    department_scoped="<" in rule.rule,
                    writes=method != "GET" and not rule.rule.endswith(READ_LIKE_POSTS),
                )
            )
    return found


def call(
    client: FlaskClient, endpoint: Endpoint, target: Provisioned, headers: dict[str, str]
) -> int:
    body = (
        department_payload(target.department_id) if endpoint.method in ("POST", "PATCH") else None
    )
    response = client.open(
        endpoint.path(target.department_id, target.job_id),
        method=endpoint.method,
        json=body,
        headers=headers,
    )
    return response.status_code


def bad_tokens(app: Flask) -> dict[str, str | None]:
    secret = app.config["JWT_SECRET_KEY"]
    return {
        "missing": None,
        "basic-scheme": "Basic YWRtaW46YWRtaW4=",
        "garbage": "Bearer not.a.jwt",
        "expired": f"Bearer {make_token(app, ttl=timedelta(seconds=-5))}",
        "not-yet-valid": f"Bearer {_forged(app, nbf=4_000_000_000 - 10)}",
        "wrong-signature": f"Bearer {_forged(app, secret='wrong-secret-' + 'x' * 40)}",
        "alg-none": f"Bearer {_forged(app, algorithm='none')}",
        "alg-hs512": f"Bearer {_forged(app, secret=secret, algorithm='HS512')}",
        "no-role": f"Bearer {_forged(app, role=None)}",
        "no-email": f"Bearer {_forged(app, email=None)}",
        "no-exp": f"Bearer {_forged(app, exp=None)}",
        "department-without-id": f"Bearer {_forged(app, role='department')}",
    }


def test_every_endpoint_refuses_every_bad_token(
    app: Flask, client: FlaskClient, provisioned: Provisioned
) -> None:
    failures = []
    for endpoint in api_endpoints(app):
        for name, token in bad_tokens(app).items():
            headers = {"Authorization": token} if token else {}
            status = call(client, endpoint, provisioned, headers)
            if status != 401:
                failures.append(f"{endpoint} with {name}: {status}")
        unknown_role = {"Authorization": f"Bearer {_forged(app, role='superuser')}"}
        if (status := call(client, endpoint, provisioned, unknown_role)) != 403:
            failures.append(f"{endpoint} with role=superuser: {status}")
    assert failures == []


def test_a_department_token_cannot_reach_another_department(
    app: Flask, client: FlaskClient, provisioned: Provisioned
) -> None:
    intruder = {"Authorization": f"Bearer {make_token(app, 'department', new_department_id())}"}
    failures = []
    for endpoint in api_endpoints(app):
        if not (endpoint.department_scoped or endpoint.writes):
            continue
        status = call(client, endpoint, provisioned, intruder)
        if status != 403:
            failures.append(f"{endpoint}: {status}")
    assert failures == []
    listing = client.get("/api/departments", headers=intruder).get_json()
    assert listing["departments"] == [] and listing["total"] == 0


def test_a_department_token_reads_only_its_own_and_writes_nothing(
    app: Flask, client: FlaskClient, provisioned: Provisioned
) -> None:
    own = {"Authorization": f"Bearer {make_token(app, 'department', provisioned.department_id)}"}
    failures = []
    for endpoint in api_endpoints(app):
        status = call(client, endpoint, provisioned, own)
        if endpoint.writes and status != 403:
            failures.append(f"{endpoint} (a write): {status}")
        if not endpoint.writes and status != 200 and endpoint.department_scoped:
            failures.append(f"{endpoint} (own read): {status}")
        if not endpoint.writes and status not in (200, 403):  # fleet-wide reads: admin's call
            failures.append(f"{endpoint} (fleet read): {status}")
    assert failures == []
    listing = client.get("/api/departments", headers=own).get_json()
    assert [d["departmentId"] for d in listing["departments"]] == [provisioned.department_id]


# --- hostile input ------------------------------------------------------------------

HOSTILE_IDS = [
    "z4'; DROP TABLE departments;--",
    'z4"quoted"',
    "z4;rm -rf",
    "../../etc/passwd",
    "z4/../../x",
    "z4%2e%2e",
    "\uff5a\uff14fullwidth",  # fullwidth "z4": NFKC would fold it into a valid id
    "z4ünïcode",
    "z4 space",
    "z4\x00nul",
    "z4$(id)",
    "z4`id`",
    "z" * 5000,
    "z4_under",
    "Z4UPPER",
]


@pytest.mark.parametrize("value", HOSTILE_IDS, ids=[repr(v)[:30] for v in HOSTILE_IDS])
def test_hostile_department_ids_are_422_and_create_nothing(
    value: str, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/provision-department", json=department_payload(value), headers=admin_headers
    )
    assert response.status_code == 422
    assert "departmentId" in response.get_json()["errors"]["json"]
    assert _department_rows(value) == 0


def test_a_department_id_with_a_trailing_newline_is_422(
    client: FlaskClient, admin_headers: dict[str, str], live_stack: Stack
) -> None:
    value = new_department_id() + "\n"
    # Should the API accept it, the job must die at validation, before any resource.
    FaultInjector(live_stack.env["REDIS_URL"]).arm(value, "validation.create", mode="fail")
    response = client.post(
        "/api/provision-department", json=department_payload(value), headers=admin_headers
    )
    if response.status_code == 202:
        wait_for_job(str(response.get_json()["provisioningId"]))
    assert response.status_code == 422, response.get_json()


def _path_param_statuses(client: FlaskClient, headers: dict[str, str], value: str) -> list[str]:
    """Each department/job path with ``value`` in it, and what it answered if not 404/422."""
    encoded = quote(value, safe="")
    wrong = []
    for method, path in (
        ("GET", f"/api/departments/{encoded}/health"),
        ("GET", f"/api/departments/{encoded}/history"),
        ("PATCH", f"/api/departments/{encoded}"),
        ("POST", f"/api/departments/{encoded}/repair"),
        ("DELETE", f"/api/deprovision/{encoded}"),
        ("GET", f"/api/provision-status/{encoded}"),
    ):
        body = {"departmentName": "x"} if method == "PATCH" else None
        status = client.open(path, method=method, headers=headers, json=body).status_code
        if status not in (404, 422):
            wrong.append(f"{method} {path}: {status}")
    return wrong


SAFE_HOSTILE_IDS = [v for v in HOSTILE_IDS if "\x00" not in v]


@pytest.mark.parametrize("value", SAFE_HOSTILE_IDS, ids=[repr(v)[:30] for v in SAFE_HOSTILE_IDS])
def test_hostile_path_parameters_are_plain_not_found(
    value: str, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    assert _path_param_statuses(client, admin_headers, value) == []


def test_a_nul_byte_in_a_path_parameter_is_not_found_not_500(
    client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    assert _path_param_statuses(client, admin_headers, "z4\x00nul") == []


def test_an_oversized_idempotency_key_is_refused_not_a_500(
    client: FlaskClient, admin_headers: dict[str, str], live_stack: Stack
) -> None:
    payload = department_payload()
    FaultInjector(live_stack.env["REDIS_URL"]).arm(
        payload["departmentId"], "validation.create", mode="fail"
    )
    headers = {**admin_headers, "Idempotency-Key": "k" * 300}
    response = client.post("/api/provision-department", json=payload, headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)[:200]


def test_hostile_free_text_is_stored_and_served_verbatim(
    client: FlaskClient, admin_headers: dict[str, str], provisioned: Provisioned
) -> None:
    listing = client.get("/api/departments?perPage=500", headers=admin_headers).get_json()
    row = next(d for d in listing["departments"] if d["departmentId"] == provisioned.department_id)
    assert row["departmentName"] == HOSTILE_NAME
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT department_name, config FROM departments WHERE department_id = %s",
                (provisioned.department_id,),
            )
            name, stored = cur.fetchone() or (None, None)
    finally:
        conn.close()
    assert name == HOSTILE_NAME
    assert stored["customConfig"] == HOSTILE_CONFIG
    # The SQL in the name never ran: the orchestrator's tables are all still there.
    assert _department_rows(provisioned.department_id) == 1


def _department_rows(department_id: str) -> int:
    from app.persistence.database import db
    from app.persistence.models import Department

    with db.transaction() as session:
        rows = session.scalars(
            # PostgreSQL text cannot hold NUL: such an id can never have been stored.
            select(Department.id).where(
                Department.department_id == department_id.replace("\x00", "")[:31]
            )
        )
        return len(list(rows))


# --- secrets never leak --------------------------------------------------------------


def _secrets(provisioned: Provisioned, env: dict[str, str]) -> dict[str, str]:
    from app.persistence.database import db
    from app.persistence.models import Department
    from app.persistence.secrets import DepartmentSecrets

    with db.transaction() as session:
        pk = session.scalar(
            select(Department.id).where(Department.department_id == provisioned.department_id)
        )
    assert pk is not None
    store = DepartmentSecrets(pk, env["SECRETS_KEY"])
    found = {
        "tenant database password": store.get("database_password"),
        "OAuth client secret": store.get("oauth_client_secret"),
        "n8n API key": env["N8N_API_KEY"],
        "JWT secret": env["JWT_SECRET"],
        "secrets key": env["SECRETS_KEY"],
    }
    assert all(value and len(value) >= 16 for value in found.values()), found.keys()
    return {name: str(value) for name, value in found.items()}


def _log_files(run_dir: Path) -> dict[str, str]:
    return {
        str(path.relative_to(run_dir)): path.read_text(errors="replace")
        for path in run_dir.rglob("*.log")
        if path.is_file()
    }


def _database_text() -> dict[str, str]:
    """Every table an operator or the API reads: job logs, steps, jobs, departments."""
    queries = {
        "job_logs": "SELECT message FROM job_logs",
        "job_steps": "SELECT coalesce(error, '') || outputs::text FROM job_steps",
        "provisioning_jobs": "SELECT config::text || coalesce(error::text, '') "
        "FROM provisioning_jobs",
        "departments": "SELECT config::text || resources::text FROM departments",
        "idempotency_records": "SELECT response::text FROM idempotency_records",
    }
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    try:
        with conn.cursor() as cur:
            out = {}
            for table, sql in queries.items():
                cur.execute(sql)
                out[table] = "\n".join(str(row[0]) for row in cur.fetchall())
            return out
    finally:
        conn.close()


def _redis_text(url: str) -> dict[str, str]:
    """Broker queues, unacked messages, results: whatever type each key is."""
    client = redis.Redis.from_url(url)
    dumps = {}
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        if kind == "string":
            value: Any = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1)
        else:
            continue
        dumps[f"redis:{key.decode(errors='replace')}"] = repr(value)
    return dumps


def _api_text(
    client: FlaskClient, headers: dict[str, str], provisioned: Provisioned
) -> dict[str, str]:
    department = provisioned.department_id
    paths = [
        f"/api/provision-status/{provisioned.job_id}",
        "/api/departments?perPage=500",
        f"/api/departments/{department}/health",
        f"/api/departments/{department}/history",
    ]
    return {path: client.get(path, headers=headers).get_data(as_text=True) for path in paths}


def test_secrets_never_appear_in_logs_records_responses_or_redis(
    client: FlaskClient,
    admin_headers: dict[str, str],
    provisioned: Provisioned,
    live_stack: Stack,
    run_dir: Path,
) -> None:
    secrets = _secrets(provisioned, live_stack.env)
    haystacks = {
        **_api_text(client, admin_headers, provisioned),
        **_log_files(run_dir),
        **_database_text(),
        **_redis_text(live_stack.env["REDIS_URL"]),
    }
    assert any("celery" in name for name in haystacks), "the broker was not scanned"
    leaks = [
        f"{secret_name} in {where}"
        for where, text in haystacks.items()
        for secret_name, secret in secrets.items()
        if secret in text or json.dumps(secret)[1:-1] in text
    ]
    assert leaks == []


# --- hardening headers and CORS ---------------------------------------------------------


def _assert_hardened(response: requests.Response, json_api: bool) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", "")
    assert headers.get("Referrer-Policy") == "no-referrer"
    if json_api:
        assert "no-store" in headers.get("Cache-Control", "")
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize(
    ("path", "authorized", "json_api"),
    [
        ("/api/departments", True, True),
        ("/api/departments", False, True),  # the 401 too
        ("/api/provision-status/not-a-uuid", True, True),  # and the 404
        ("/openapi.json", False, True),
        ("/api-docs", False, False),
        ("/redoc", False, False),
    ],
)
def test_hardening_headers_on_the_running_api(
    path: str, authorized: bool, json_api: bool, admin_headers: dict[str, str], live_stack: Stack
) -> None:
    headers = {"Origin": "https://evil.example", **(admin_headers if authorized else {})}
    response = requests.get(f"{BASE_URL}{path}", headers=headers, timeout=10)
    _assert_hardened(response, json_api)


def test_cors_preflight_is_closed_by_default(live_stack: Stack) -> None:
    response = requests.options(
        f"{BASE_URL}/api/departments",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Headers" not in response.headers


def test_cors_opens_only_to_configured_origins(live_stack: Stack) -> None:
    from app.api.security_headers import init_security_headers

    app = Flask(__name__)
    settings = config.current().model_copy(update={"CORS_ORIGINS": ("https://ops.example",)})
    init_security_headers(app, settings)
    app.add_url_rule("/api/ping", "ping", lambda: {"ok": True}, methods=["GET"])
    client = app.test_client()

    allowed = client.options(
        "/api/ping",
        headers={"Origin": "https://ops.example", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ops.example"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    assert "Origin" in allowed.headers["Vary"]
    other = client.get("/api/ping", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other.headers["Cache-Control"] == "no-store"


def test_cors_origins_setting_reads_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert config.load_settings().CORS_ORIGINS == ("https://a.example", "https://b.example")


def test_nothing_of_the_hostile_department_leaked_when_it_goes(
    app: Flask, admin_headers: dict[str, str], live_stack: Stack
) -> None:
    """A quoted, unicode name deprovisions as cleanly as any other."""
    client = app.test_client()
    payload = department_payload(departmentName=HOSTILE_NAME)
    assert wait_for_job(submit(client, admin_headers, payload), 180)["status"] == "completed"
    response = client.delete(f"/api/deprovision/{payload['departmentId']}", headers=admin_headers)
    assert wait_for_job(str(response.get_json()["provisioningId"]), 120)["status"] == "completed"
    assert leftovers(live_stack, payload["departmentId"]) == {}
