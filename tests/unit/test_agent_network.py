"""The agents' network fence as decisions: which rules, added only when missing.

iptables itself is replaced by a recorder here; tests/e2e/test_agent_network_fence.py
attacks Redis from a real agent."""

from __future__ import annotations

import os

import pytest

from app.providers.agent_network import CHAIN, NetworkFence, redis_ports, rules


def test_redis_ports_come_from_the_urls_with_the_default_port() -> None:
    assert redis_ports("redis://127.0.0.1:6380/0", "redis://localhost/1") == (6379, 6380)
    assert redis_ports("rediss://:pw@cache:6390/0") == (6390,)
    assert redis_ports("memory://") == ()


def test_agents_uids_jump_to_the_chain_which_rejects_each_port() -> None:
    planned = rules((6379,))
    jumps = [rule for chain, rule in planned if chain == "OUTPUT"]
    assert [rule[rule.index("--uid-owner") + 1] for rule in jumps] == ["10001", "20000-29999"]
    assert all(rule[-2:] == ["-j", CHAIN] for rule in jumps)
    reject = ["-p", "tcp", "--dport", "6379", "-j", "REJECT", "--reject-with", "tcp-reset"]
    assert (CHAIN, reject) in planned


class Recorder:
    """iptables that already holds the rules in ``present``."""

    def __init__(self, present: set[tuple[str, ...]] | None = None) -> None:
        self.present = present or set()
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str]) -> int:
        self.calls.append(command)
        if "-C" in command:
            return 0 if tuple(command[command.index("-C") + 1 :]) in self.present else 1
        return 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the fence is only attempted as root")
def test_only_missing_rules_are_added_and_only_once_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda tool: f"/usr/sbin/{tool}")
    chain_rule = rules((6379,))[-1]
    runner = Recorder({(chain_rule[0], *chain_rule[1])})
    fence = NetworkFence((6379,), run=runner)

    assert "refused TCP to ports 6379" in fence.ensure()
    added = [c for c in runner.calls if "-I" in c or "-A" in c]
    assert len(added) == 2 * 2  # two uid jumps, for iptables and for ip6tables
    assert all(c[c.index("-I") + 1 : c.index("-I") + 3] == ["OUTPUT", "1"] for c in added)

    runner.calls.clear()
    fence.ensure()
    assert runner.calls == []


def test_without_root_the_outputs_say_agents_are_not_fenced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    runner = Recorder()
    assert NetworkFence((6379,), run=runner).ensure() == "not fenced: the orchestrator is not root"
    assert runner.calls == []


def test_a_rule_the_kernel_refuses_fails_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda tool: f"/usr/sbin/{tool}")
    from app.providers.base import ProviderError

    with pytest.raises(ProviderError, match="could not add"):
        NetworkFence((6379,), run=lambda command: 1).ensure()
