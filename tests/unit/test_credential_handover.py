"""The agent's side of a credential hand-over, and what the rotation waits for:
plain files and dicts, no stack needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.providers.credential_rotation import _matches, fingerprint
from department_agent.credentials import Credentials, CredentialSource


def _write(path: Path, payload: object, stamp: int) -> None:
    path.write_text(json.dumps(payload) if not isinstance(payload, str) else payload)
    os.utime(path, ns=(stamp, stamp))


def test_the_agent_takes_a_hand_over_at_its_next_read_and_keeps_working_through_garbage(
    tmp_path: Path,
) -> None:
    path = tmp_path / "credentials.json"
    source = CredentialSource(Credentials(("old",), "s1"), str(path))
    assert source.current() == Credentials(("old",), "s1")  # no file: the environment's

    _write(path, {"databasePasswords": ["new", "old"], "oauthClientSecret": "s2"}, 1_000)
    assert source.current() == Credentials(("new", "old"), "s2")

    _write(path, "{half a fi", 2_000)  # a torn or foreign write must not break the agent
    assert source.current() == Credentials(("new", "old"), "s2")

    _write(path, {"databasePasswords": ["new"], "oauthClientSecret": "s2"}, 3_000)
    assert source.current() == Credentials(("new",), "s2")


def test_the_rotation_waits_for_exactly_what_it_handed_over() -> None:
    new, old, secret = fingerprint("new"), fingerprint("old"), fingerprint("s2")
    held_both = {"databaseHeld": [new, old], "oauth": secret, "used": old}
    assert _matches(held_both, {"held": new, "oauth": secret})
    assert not _matches(held_both, {"used": new, "oauth": secret})  # not switched yet
    assert _matches({**held_both, "used": new}, {"used": new, "oauth": secret})
    assert not _matches({**held_both, "oauth": fingerprint("s1")}, {"held": new, "oauth": secret})
    assert not _matches({}, {"held": new, "oauth": secret})  # an agent that did not answer


def test_a_second_hand_over_within_the_same_second_is_not_missed(tmp_path: Path) -> None:
    """Docker's put_archive rewrites the file in place with the tar's whole-second
    mtime: two hand-overs in one second share inode and mtime, not the change time."""
    path = tmp_path / "credentials.json"
    source = CredentialSource(Credentials(("old",), "s1"), str(path))
    _write(path, {"databasePasswords": ["pw-1"], "oauthClientSecret": "s1"}, 5_000)
    assert source.current() == Credentials(("pw-1",), "s1")
    inode = path.stat().st_ino

    _write(path, {"databasePasswords": ["pw-2"], "oauthClientSecret": "s2"}, 5_000)

    assert path.stat().st_ino == inode  # same inode, mtime and size: only ctime moved
    assert source.current() == Credentials(("pw-2",), "s2")
