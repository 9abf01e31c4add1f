"""n8n workflow templates: which a department wants, and each rendered into the
body n8n's public API accepts, its trigger node carrying a version marker.

Each catalogue workflow comes from ``n8n_templates/<name>.json``: an envelope
``{"templateVersion": N, "description": ..., "workflow": {nodes, connections,
settings}}``. The envelope exists because the public API rejects unknown fields
on the workflow and its settings, so the version cannot ride along there; it is
recorded instead in a marker in the trigger node's ``notes``, together with a
hash of the rendered workflow, so ``create`` can tell whether an existing
workflow already matches what it would create.

Config keys read: ``workflows`` (list of catalogue names), ``departmentName``
(falls back to ``name``, then the id) and ``adminEmail`` (may be absent).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from app.domain import catalogue
from app.providers.base import DepartmentContext, ProviderError

CATALOGUE = catalogue.WORKFLOWS  # the domain's list: the API validated against it
DEFAULT_TEMPLATES_DIR = Path(__file__).with_name("n8n_templates")
PLACEHOLDER = re.compile(r"\{\{po:([A-Za-z]+)\}\}")
MARKER_PREFIX = "provisioning-orchestrator:"
# Fixed namespace so a department's webhook ids are stable across retries.
WEBHOOK_NAMESPACE = uuid.UUID("8d4c3f2e-5b7a-4e61-9f0d-2a6b1c9e7d35")
# Trigger types that cannot be activated (they only run from the editor).
MANUAL_TRIGGERS = frozenset({"n8n-nodes-base.manualTrigger"})

Workflow = dict[str, Any]


def workflow_name(department_id: str, workflow: str) -> str:
    return f"{department_id}:{workflow}"


def wanted_workflows(config: dict[str, Any]) -> list[str]:
    names = config.get("workflows", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProviderError("config.workflows must be a list of workflow names")
    unknown = sorted(set(names) - set(CATALOGUE))
    if unknown:
        raise ProviderError(f"unknown workflow(s) {unknown}; catalogue: {list(CATALOGUE)}")
    return list(dict.fromkeys(names))  # de-duplicate, keep order


def load_template(templates_dir: Path, workflow: str) -> dict[str, Any]:
    path = templates_dir / f"{workflow}.json"
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProviderError(f"cannot read n8n template {path}: {exc}") from exc
    if not isinstance(template.get("templateVersion"), int) or "workflow" not in template:
        raise ProviderError(f"{path} lacks templateVersion or workflow")
    return template


def build_workflow(context: DepartmentContext, templates_dir: Path, workflow: str) -> Workflow:
    """Rendered request body, its trigger node carrying the version marker."""
    template = load_template(templates_dir, workflow)
    department_id = context.department_id
    values = {
        "departmentId": department_id,
        "departmentName": str(
            context.config.get("departmentName") or context.config.get("name") or department_id
        ),
        "adminEmail": str(context.config.get("adminEmail") or ""),
        "workflow": workflow,
        "templateVersion": str(template["templateVersion"]),
        "webhookPath": f"{department_id}-{workflow}",
        "webhookId": str(uuid.uuid5(WEBHOOK_NAMESPACE, f"{department_id}:{workflow}")),
    }
    rendered = render(template["workflow"], values)
    body: Workflow = {
        "name": workflow_name(department_id, workflow),
        "nodes": rendered["nodes"],
        "connections": rendered["connections"],
        "settings": rendered.get("settings", {}),
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    marker = f"{MARKER_PREFIX} {workflow} template v{template['templateVersion']} #{digest}"
    body["nodes"][0]["notes"] = marker
    return body


def render(value: Any, values: dict[str, str]) -> Any:
    """Fill ``{{po:key}}`` placeholders inside the parsed template's strings.

    Working on parsed values means a quote or backslash in a department name
    can never break the JSON. n8n evaluates any string starting with ``=`` as
    an expression, so placeholders are refused inside expressions, and a value
    that would turn a plain string into one is refused too (no code injection).
    """
    if isinstance(value, dict):
        return {key: render(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, values) for item in value]
    if not isinstance(value, str) or not PLACEHOLDER.search(value):
        return value
    if value.startswith("="):
        raise ProviderError(f"template places a placeholder inside an n8n expression: {value!r}")

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ProviderError(f"template uses unknown placeholder {{{{po:{key}}}}}")
        return values[key]

    rendered = PLACEHOLDER.sub(substitute, value)
    if rendered.startswith("="):
        raise ProviderError(f"value {rendered[:40]!r} would be evaluated as an n8n expression")
    return rendered


def is_activatable(body: Workflow) -> bool:
    """True when the workflow has a trigger n8n can run on its own."""
    for node in body.get("nodes", []):
        node_type = node.get("type", "")
        if node_type in MANUAL_TRIGGERS:
            continue
        if node_type.endswith(("Trigger", ".webhook")):
            return True
    return False


def marker_of(workflow: Workflow) -> str | None:
    for node in workflow.get("nodes", []):
        notes = node.get("notes") or ""
        if notes.startswith(MARKER_PREFIX):
            return notes
    return None
