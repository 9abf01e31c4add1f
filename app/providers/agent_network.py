"""Ports no department agent may connect to, enforced by the kernel before one starts.

Agents reach loopback: docker agents share the host's network, local agents are
host processes. What guards most services there is a credential the agent does
not have (PostgreSQL grants, n8n's key, the API's JWT, Caddy's admin socket).
Redis has none in this setup, and it holds Celery's queue, the token blocklist
and the rate-limit counters: an agent speaking its protocol could enqueue a
rollback of another department's job or un-revoke a token.

So the container step first makes sure an iptables (and ip6tables) chain,
``PO-AGENTS``, rejects TCP connections from agents' uids to those ports, then
starts the agent. Agents are recognised by uid: the agent image's 10001, and the
range local agent users are created in (``agent_users``). The rules are shared
by every department and idempotent; nothing else on the host is affected.

Without root or iptables nothing can be enforced: the step's ``network`` output
and the worker's log say the agent is not fenced.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.providers.base import CheckResult, DepartmentContext, Provider, ProviderError

logger = logging.getLogger(__name__)

CHAIN = "PO-AGENTS"
DOCKER_AGENT_UID = 10001  # docker/agent/Dockerfile's user
LOCAL_AGENT_UIDS = (20000, 29999)  # agent_users creates its users in this range
TOOLS = ("iptables", "ip6tables")

Runner = Callable[[list[str]], int]


def redis_ports(*urls: str) -> tuple[int, ...]:
    """The TCP ports of the Redis URLs the orchestrator uses (6379 when unstated)."""
    ports = {urlsplit(url).port or 6379 for url in urls if url.startswith(("redis", "rediss"))}
    return tuple(sorted(ports))


def agent_owner_matches() -> list[str]:
    low, high = LOCAL_AGENT_UIDS
    return [str(DOCKER_AGENT_UID), f"{low}-{high}"]


def rules(ports: Sequence[int]) -> list[tuple[str, list[str]]]:
    """(chain, rule) pairs: jumps for agents' uids, then one reject per port."""
    owners = agent_owner_matches()
    jumps = [("OUTPUT", ["-m", "owner", "--uid-owner", m, "-j", CHAIN]) for m in owners]
    rejects = [
        (CHAIN, ["-p", "tcp", "--dport", str(p), "-j", "REJECT", "--reject-with", "tcp-reset"])
        for p in ports
    ]
    return [*jumps, *rejects]


def _run(command: list[str]) -> int:
    return subprocess.run(command, capture_output=True, timeout=20, check=False).returncode


@dataclass
class NetworkFence:
    """Makes the kernel refuse agents' connections to ``ports``; see the module."""

    ports: tuple[int, ...]
    run: Runner = _run
    _done: bool = field(default=False, init=False)

    def available(self) -> str | None:
        """Why the fence cannot be enforced here, or None."""
        if os.geteuid() != 0:
            return "the orchestrator is not root"
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        return f"{', '.join(missing)} not installed" if missing else None

    def ensure(self) -> str:
        """Adds whatever rule is missing (once per process); describes the result."""
        if not self.ports:
            return "no ports to fence"
        why_not = self.available()
        if why_not is not None:
            logger.warning("department agents can reach Redis: %s", why_not)
            return f"not fenced: {why_not}"
        if not self._done:
            for tool in TOOLS:
                self._ensure_with(tool)
            self._done = True
        return f"agents refused TCP to ports {', '.join(map(str, self.ports))} ({CHAIN})"

    def _ensure_with(self, tool: str) -> None:
        self.run([tool, "-w", "-N", CHAIN])  # exists already: fine
        for chain, rule in rules(self.ports):
            if self.run([tool, "-w", "-C", chain, *rule]) == 0:
                continue
            where = ["-I", chain, "1"] if chain == "OUTPUT" else ["-A", chain]
            if self.run([tool, "-w", *where, *rule]) != 0:
                raise ProviderError(f"{tool}: could not add {chain} {' '.join(rule)}")


class FencedContainer:
    """A container runtime whose agents start only behind the fence."""

    def __init__(self, inner: Provider, fence: NetworkFence) -> None:
        self._inner = inner
        self._fence = fence
        self.name = inner.name

    @property
    def inner(self) -> Provider:
        return self._inner

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        network = self._fence.ensure()
        return {**self._inner.create(context), "network": network}

    def delete(self, context: DepartmentContext) -> None:
        self._inner.delete(context)

    def check(self, context: DepartmentContext) -> CheckResult:
        return self._inner.check(context)

    def hand_over(self, context: DepartmentContext, passwords: list[str], secret: str) -> None:
        receiver: Any = self._inner
        receiver.hand_over(context, passwords, secret)
