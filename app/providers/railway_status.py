"""What each of Railway's 13 deployment statuses means to the driver, decided in one table.

The statuses are the ``DeploymentStatus`` enum of Railway's schema. Meanings come from
Railway's docs (manage-deployments) and the CLI, which treats SUCCESS and SLEEPING as
stable and keeps waiting through the others.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from app.providers.base import CheckResult, ProviderError, Stopwatch


class Phase(Enum):
    RUNNING = "running"  # serving traffic
    ASLEEP = "asleep"  # serverless sleep: healthy, woken by the next request; never redeployed
    PENDING = "pending"  # will move on by itself: keep polling (within the budget)
    SUPERSEDED = "superseded"  # replaced by a newer deployment: follow the service's latest
    FAILED = "failed"  # the deployment will not run: a permanent error
    BLOCKED = "blocked"  # waits for a person (approval in Railway's dashboard): permanent


STATUS_PHASES: dict[str, Phase] = {
    "SUCCESS": Phase.RUNNING,
    "SLEEPING": Phase.ASLEEP,
    "QUEUED": Phase.PENDING,
    "WAITING": Phase.PENDING,
    "INITIALIZING": Phase.PENDING,
    "BUILDING": Phase.PENDING,
    "DEPLOYING": Phase.PENDING,
    # A newer deployment (ours or someone else's) replaced this one.
    "SKIPPED": Phase.SUPERSEDED,
    "REMOVING": Phase.SUPERSEDED,
    "REMOVED": Phase.SUPERSEDED,
    "FAILED": Phase.FAILED,
    "CRASHED": Phase.FAILED,
    "NEEDS_APPROVAL": Phase.BLOCKED,
}

STABLE = frozenset({Phase.RUNNING, Phase.ASLEEP})


def phase_of(status: str) -> Phase:
    """An unknown status (Railway added one) fails loudly rather than being waited on."""
    return STATUS_PHASES.get(status, Phase.FAILED)


def poll_delays(initial: float, maximum: float, timeout: float) -> list[float]:
    """The sleeps between polls: doubling from ``initial`` up to ``maximum``, summing to at
    most ``timeout``. Its length is the number of polls one wait can cost."""
    delays: list[float] = []
    delay, total = initial, 0.0
    while total + delay <= timeout:
        delays.append(delay)
        total += delay
        delay = min(delay * 2, maximum)
    return delays


def blocked(deployment_id: str) -> ProviderError:
    return ProviderError(
        f"railway deployment {deployment_id} NEEDS_APPROVAL: approve it in Railway's dashboard"
    )


def judge_health(
    watch: Stopwatch, service_id: str, instance: dict[str, Any] | None, image: str
) -> CheckResult:
    """Healthy when the service is built from ``image`` and its latest deployment runs or
    sleeps, or builds while an older one still serves (Railway keeps it until the new one
    is up). Another image (a new RAILWAY_IMAGE, a change by hand) is drift to repair."""
    latest = (instance or {}).get("latestDeployment")
    if latest is None:
        return result(watch, False, "no deployment", {"serviceId": service_id})
    data = {"serviceId": service_id, "deploymentId": latest["id"], "status": latest["status"]}
    built_from = ((instance or {}).get("source") or {}).get("image")
    if built_from != image:
        return result(watch, False, f"service image is {built_from}, wanted {image}", data)
    phase = phase_of(latest["status"])
    if phase is Phase.ASLEEP:
        detail = "latest deployment SLEEPING: asleep, Railway wakes it on the next request"
        return result(watch, True, detail, data)
    active = (instance or {}).get("activeDeployments") or []
    serving = [d for d in active if d["id"] != latest["id"]]
    if phase is Phase.PENDING and any(phase_of(d["status"]) in STABLE for d in serving):
        return result(watch, True, f"latest deployment {latest['status']}; previous serves", data)
    return result(watch, phase is Phase.RUNNING, f"latest deployment {latest['status']}", data)


def result(watch: Stopwatch, healthy: bool, detail: str, data: dict[str, Any]) -> CheckResult:
    return CheckResult("container_process", healthy, watch.elapsed_ms, detail, data)
