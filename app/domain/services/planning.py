"""Dry-run: what provisioning would create, and what of it exists already.

Every probe here only reads: catalogue queries, GETs, a look at /proc. Checks
that act (a token exchange, the agent's own health check, which asks for a
token) are deliberately not used, so a dry run leaves no trace anywhere.
"""

from __future__ import annotations

from typing import Any

import psycopg2
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.config import Settings
from app.domain import catalogue, saga
from app.domain.services.cleanup import NoSecrets
from app.domain.services.job_records import context_for
from app.domain.services.provisioning import active_job
from app.oauth.models import OAuthClient
from app.persistence.database import db
from app.persistence.models import Department
from app.providers import (
    database_postgres,
    gateway_caddy,
    oauth_builtin,
    postgres_access,
    workflow_templates,
    workflows_n8n,
)
from app.providers.base import DepartmentContext
from app.providers.registry import provider


def plan_provisioning(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    department_id = config["departmentId"]
    context, conflict = _context_and_conflict(config, settings)
    planners = {
        "create_database": _database,
        "create_oauth": _oauth,
        "deploy_container": _container,
        "deploy_workflows": _workflows,
        "configure_gateway": _gateway,
    }
    steps = []
    for step in saga.SAGA:
        planner = planners.get(step.name)
        resources, exists = planner(context, settings) if planner else ({}, None)
        steps.append(
            {
                "step": step.name,
                "state": step.state.lower(),
                "description": step.description,
                "resources": resources,
                "exists": exists,
            }
        )
    return {
        "dryRun": True,
        "departmentId": department_id,
        "valid": True,
        "errors": {},
        "wouldConflict": conflict,
        "steps": steps,
    }


def _context_and_conflict(
    config: dict[str, Any], settings: Settings
) -> tuple[DepartmentContext, str | None]:
    with db.transaction() as session:
        department = session.scalar(
            select(Department).where(Department.department_id == config["departmentId"])
        )
        if department is None:
            return DepartmentContext(config["departmentId"], config, {}, NoSecrets()), None
        conflict = None
        job = active_job(session, department)
        if job is not None:
            conflict = f"a {job.kind} job is in flight: the request would return it"
        elif department.status == "ACTIVE":
            conflict = "the department is ACTIVE: the request would be refused (409)"
        return context_for(department, settings, config), conflict


def _database(context: DepartmentContext, settings: Settings) -> tuple[dict, dict]:
    schema = database_postgres.schema_name(context)
    role = database_postgres.role_name(context)
    url = make_url(settings.tenant_database_url)
    conn = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connect_timeout=5,
        # A privileged session in the tenants database: no name may resolve
        # into a tenant's schema (see app/providers/postgres_access.py).
        options=f"-c search_path={postgres_access.ADMIN_SEARCH_PATH}",
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            schema_exists = cur.fetchone() is not None
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            role_exists = cur.fetchone() is not None
    finally:
        conn.close()
    resources = {
        "database": url.database,
        "schema": schema,
        "role": role,
        "tables": list(database_postgres.BASELINE_TABLES),
    }
    return resources, {"schema": schema_exists, "role": role_exists}


def _oauth(context: DepartmentContext, settings: Settings) -> tuple[dict, dict]:
    client_id = oauth_builtin.client_id_for(context.department_id)
    with db.transaction() as session:
        client = session.get(OAuthClient, client_id)
        exists = client is not None and client.revoked_at is None
    scopes = catalogue.scopes_for(context.config.get("enabledTools", []))
    return {"clientId": client_id, "scopes": scopes, "audience": context.department_id}, {
        "client": exists
    }


def _container(context: DepartmentContext, settings: Settings) -> tuple[dict, dict]:
    resources = dict(context.config.get("resources", {}))
    if settings.CONTAINER_RUNTIME == "railway":
        return {"runtime": "railway", "service": f"dept-{context.department_id}", **resources}, {
            "service": None
        }  # unknown without calling Railway; see README
    if settings.CONTAINER_RUNTIME == "docker":
        from app.providers.container_docker import running_container_pids

        pids = running_container_pids(settings.DOCKER_HOST, context.department_id)
    else:
        from app.providers.agent_process import find_agent_pids

        pids = find_agent_pids(context.department_id)
    return {
        "runtime": settings.CONTAINER_RUNTIME,
        "agent": f"department agent for {context.department_id}",
        **resources,
    }, {"agent": bool(pids)}


def _workflows(context: DepartmentContext, settings: Settings) -> tuple[dict, dict]:
    names = [
        workflow_templates.workflow_name(context.department_id, w)
        for w in context.config.get("workflows", [])
    ]
    result = provider(settings, "workflows").check(context)
    return {"workflows": names, "tag": workflows_n8n.department_tag(context.department_id)}, {
        "allWorkflows": result.healthy,
        "detail": result.detail,
    }


def _gateway(context: DepartmentContext, settings: Settings) -> tuple[dict, dict]:
    route_id = gateway_caddy.route_id_for(context.department_id)
    result = provider(settings, "gateway").check(context)
    url = f"{settings.GATEWAY_PUBLIC_URL.rstrip('/')}/departments/{context.department_id}/"
    present = bool(result.data.get("upstreams"))
    return {"routeId": route_id, "path": f"/departments/{context.department_id}/*", "url": url}, {
        "route": present
    }
