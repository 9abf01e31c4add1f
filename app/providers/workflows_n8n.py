"""n8n workflows per department, driven through n8n's public REST API (/api/v1).

What each workflow looks like is ``workflow_templates``' business; this module
makes exactly those exist in n8n, tagged and active.

A department's workflows are named ``<departmentId>:<workflow>`` and tagged
``dept:<departmentId>`` (shortened with a hash when longer than n8n's 24
character tag limit). Lookups use the tag first and the name prefix second,
because a crash between creating and tagging leaves an untagged workflow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import requests

from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    TransientProviderError,
    checked_department_id,
)
from app.providers.http import request
from app.providers.workflow_templates import (
    DEFAULT_TEMPLATES_DIR,
    Workflow,
    build_workflow,
    is_activatable,
    marker_of,
    wanted_workflows,
    workflow_name,
)

TAG_MAX_LENGTH = 24  # n8n's column limit; longer names fail with a misleading 409
PAGE_LIMIT = 250  # the public API's maximum page size


def validate_department_id(department_id: str) -> str:
    return checked_department_id(department_id)


def department_tag(department_id: str) -> str:
    tag = f"dept:{department_id}"
    if len(tag) <= TAG_MAX_LENGTH:
        return tag
    digest = hashlib.sha256(department_id.encode()).hexdigest()[:8]
    return f"dept:{department_id[:10]}~{digest}"


def oldest_first(workflows: list[Workflow], name: str) -> list[Workflow]:
    """Live workflows with this exact name, in an order every job agrees on."""
    matches = [w for w in workflows if w["name"] == name and not w.get("isArchived")]
    return sorted(matches, key=lambda w: (w.get("createdAt", ""), w["id"]))


class N8nWorkflowProvider:
    name = "workflows"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        templates_dir: Path | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._api = base_url.rstrip("/") + "/api/v1"
        self._headers = {"X-N8N-API-KEY": api_key, "Accept": "application/json"}
        self._templates_dir = templates_dir or DEFAULT_TEMPLATES_DIR
        self._session = session or requests.Session()

    # ------------------------------------------------------------ Provider API

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        department_id = validate_department_id(context.department_id)
        wanted = wanted_workflows(context.config)
        # Every body is rendered before any call, so a bad template changes nothing.
        bodies = {wf: build_workflow(context, self._templates_dir, wf) for wf in wanted}
        tag, tag_is_new = self._ensure_tag(department_tag(department_id))
        # A tag made just now means no earlier attempt got this far (delete()
        # removes the tag last), so there is nothing to look for first: the one
        # listing after creating finds any leftover made by hand or by a racing
        # job, and _converge keeps the oldest of each name, as it always does.
        existing = [] if tag_is_new else self._department_workflows(department_id)
        existing = self._create_missing(department_id, [bodies[wf] for wf in wanted], existing)
        ids = {wf: self._converge(bodies[wf], tag, existing) for wf in wanted}
        keep = set(ids.values())
        for workflow in existing:
            if workflow["id"] not in keep:
                self._delete_workflow(workflow["id"])
        return {"workflows": ids}

    def delete(self, context: DepartmentContext) -> None:
        department_id = validate_department_id(context.department_id)
        for workflow in self._department_workflows(department_id):
            self._delete_workflow(workflow["id"])
        tag = self._find_tag(department_tag(department_id))
        if tag is not None:
            self._call("DELETE", f"/tags/{tag['id']}", allow_status=frozenset({404}))

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        try:
            department_id = validate_department_id(context.department_id)
            wanted = wanted_workflows(context.config)
            # By name only: _inspect looks workflows up by name, so the tagged
            # listing (a second request per check, on every health check and
            # drift scan) could add nothing it reads.
            existing = self._named(department_id)
        except ProviderError as exc:
            return CheckResult(
                name="n8n_workflows",
                healthy=False,
                latency_ms=watch.elapsed_ms,
                detail=str(exc),
                data={"error": type(exc).__name__},
            )
        problems, states = self._inspect(department_id, wanted, existing)
        return CheckResult(
            name="n8n_workflows",
            healthy=not problems,
            latency_ms=watch.elapsed_ms,
            detail="; ".join(problems) or f"{len(wanted)} workflow(s) present and active",
            data={"workflows": states},
        )

    # ------------------------------------------------------------ convergence

    def _create_missing(
        self, department_id: str, bodies: list[Workflow], existing: list[Workflow]
    ) -> list[Workflow]:
        """Creates the workflows no one has made yet; returns what exists then.

        Jobs racing for the same department may each have created one; every
        job keeps the oldest (``_converge``), so they all settle on the same
        workflow. One listing after all the creations, not one per workflow:
        issue 16 counted n8n's requests per department."""
        missing = [body for body in bodies if not oldest_first(existing, body["name"])]
        if not missing:
            return existing
        for body in missing:
            self._call("POST", "/workflows", json=body)
        fresh = self._named(department_id)
        return list({w["id"]: w for w in [*existing, *fresh]}.values())

    def _converge(self, body: Workflow, tag: dict[str, Any], existing: list[Workflow]) -> str:
        """Make exactly one workflow with this name exist, tagged, current, active."""
        current, *duplicates = oldest_first(existing, body["name"])
        for duplicate in duplicates:
            self._delete_workflow(duplicate["id"])
        tag_ids = [t["id"] for t in current.get("tags") or []]
        if marker_of(current) != marker_of(body):
            current = self._call("PUT", f"/workflows/{current['id']}", json=body).json()
        self._ensure_workflow_tag(str(current["id"]), tag_ids, tag)
        # The public API's PUT re-publishes an already active workflow, so only
        # new or deactivated ones need the activate call.
        if is_activatable(body) and not current.get("active"):
            self._activate(str(current["id"]))
        return str(current["id"])

    def _activate(self, workflow_id: str) -> None:
        path = f"/workflows/{workflow_id}"
        response = self._call("POST", f"{path}/activate", allow_status=frozenset({400}))
        if response.ok:
            return
        # A racing job activating the same workflow makes ours fail with "path
        # already taken"; that is success if the workflow did end up active.
        if not self._call("GET", path).json().get("active"):
            raise ProviderError(f"activating n8n workflow {workflow_id}: {response.text[:300]}")

    def _ensure_workflow_tag(
        self, workflow_id: str, tag_ids: list[str], tag: dict[str, Any]
    ) -> None:
        if tag["id"] in tag_ids:
            return
        # PUT replaces the whole tag list, so keep tags someone else added.
        payload = [{"id": tag_id} for tag_id in [*tag_ids, tag["id"]]]
        path = f"/workflows/{workflow_id}/tags"
        if self._call("PUT", path, json=payload, allow_status=frozenset({404})).ok:
            return
        # n8n answers 404 "Some tags not found" for any database error, which
        # includes two jobs tagging the same workflow at once: look again.
        current = self._call("GET", path, allow_status=frozenset({404}))
        if current.ok and tag["id"] in {t["id"] for t in current.json()}:
            return
        raise TransientProviderError(f"tagging n8n workflow {workflow_id} raced; retry")

    def _inspect(
        self, department_id: str, wanted: list[str], existing: list[Workflow]
    ) -> tuple[list[str], dict[str, dict[str, Any]]]:
        by_name = {w["name"]: w for w in existing if not w.get("isArchived")}
        problems: list[str] = []
        states: dict[str, dict[str, Any]] = {}
        for wf in wanted:
            found = by_name.get(workflow_name(department_id, wf))
            if found is None:
                problems.append(f"{wf}: missing")
                states[wf] = {"exists": False, "active": False}
                continue
            states[wf] = {"exists": True, "id": found["id"], "active": bool(found.get("active"))}
            if not found.get("active"):
                problems.append(f"{wf}: inactive ({found['id']})")
        return problems, states

    # ------------------------------------------------------------ n8n calls

    def _call(
        self, method: str, path: str, *, allow_status: frozenset[int] = frozenset(), **kwargs: Any
    ) -> requests.Response:
        return request(
            self._session,
            method,
            self._api + path,
            allow_status=allow_status,
            headers=self._headers,
            **kwargs,
        )

    def _paged(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query = {**params, "limit": PAGE_LIMIT}
        while True:
            page = self._call("GET", path, params=query).json()
            items.extend(page.get("data", []))
            if not page.get("nextCursor"):
                return items
            query["cursor"] = page["nextCursor"]

    def _department_workflows(self, department_id: str) -> list[Workflow]:
        """Workflows tagged for the department or named with its prefix."""
        tagged = self._paged("/workflows", {"tags": department_tag(department_id)})
        return list({w["id"]: w for w in [*tagged, *self._named(department_id)]}.values())

    def _named(self, department_id: str) -> list[Workflow]:
        """Workflows named with the department's prefix. n8n's name filter is a
        SQL LIKE '%name%' (and '_' is a wildcard), so the prefix is re-checked
        exactly to leave e.g. "presales:email" alone."""
        prefix = f"{department_id}:"
        named = self._paged("/workflows", {"name": prefix})
        return [w for w in named if w["name"].startswith(prefix)]

    def _delete_workflow(self, workflow_id: str) -> None:
        self._call("DELETE", f"/workflows/{workflow_id}", allow_status=frozenset({404}))

    def _find_tag(self, name: str) -> dict[str, Any] | None:
        # The tags endpoint has no name filter; departments are few enough to page.
        return next((t for t in self._paged("/tags", {}) if t["name"] == name), None)

    def _ensure_tag(self, name: str) -> tuple[dict[str, Any], bool]:
        """The department's tag, and whether this call made it.

        Created first and looked up only when n8n says it exists (409): the
        tags endpoint has no name filter, so a lookup pages through every
        department's tag, a cost that grew with the fleet on every provisioning."""
        created = self._call("POST", "/tags", json={"name": name}, allow_status=frozenset({409}))
        if created.status_code != 409:
            return created.json(), True
        tag = self._find_tag(name)
        if tag is None:
            raise ProviderError(f"n8n refused tag {name!r} (409) but does not list it")
        return tag, False
