"""SECRETS_KEY as a list of keys: what encrypts, what decrypts, what counts as rotated.
No database, Redis or worker needed."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken

from app.config_rules import _valid_fernet_keys
from app.domain.services.secrets_keys import KeyCheck
from app.persistence.secrets import Keyring, parse_keys

OLD, NEW, OTHER = (Fernet.generate_key().decode() for _ in range(3))


def test_keys_are_read_newest_first_ignoring_blanks() -> None:
    assert parse_keys(f" {NEW} ,, {OLD} ") == (NEW, OLD)
    assert parse_keys("") == ()


def test_settings_accept_a_list_and_refuse_any_bad_key_in_it() -> None:
    assert _valid_fernet_keys(NEW) and _valid_fernet_keys(f"{NEW},{OLD}")
    assert not _valid_fernet_keys(f"{NEW},not-a-key")
    assert not _valid_fernet_keys(" , ")


def test_new_secrets_go_under_the_newest_key_and_old_ones_still_open() -> None:
    written_before = Fernet(OLD.encode()).encrypt(b"s3cret")
    ring = Keyring(f"{NEW},{OLD}")
    assert ring.decrypt(written_before) == b"s3cret"
    assert not ring.is_current(written_before)
    fresh = ring.encrypt(b"other")
    assert ring.is_current(fresh)
    assert Fernet(NEW.encode()).decrypt(fresh) == b"other"


def test_rotation_moves_a_secret_to_the_newest_key_so_the_old_one_can_go() -> None:
    written_before = Fernet(OLD.encode()).encrypt(b"s3cret")
    rotated = Keyring(f"{NEW},{OLD}").rotate(written_before)
    assert Keyring(NEW).decrypt(rotated) == b"s3cret"
    with pytest.raises(InvalidToken):
        Keyring(OLD).decrypt(rotated)


def test_a_foreign_key_opens_nothing() -> None:
    with pytest.raises(InvalidToken):
        Keyring(f"{NEW},{OLD}").decrypt(Fernet(OTHER.encode()).encrypt(b"x"))


def test_the_start_line_names_the_setting_and_the_departments() -> None:
    line = KeyCheck(10, 4, tuple(f"d{i}" for i in range(7))).line()
    assert line.startswith("SECRETS_KEY does not decrypt 4 of 10 stored secrets")
    assert "d0, d1, d2, d3, d4 and 2 more" in line
    assert "\n" not in line
    assert KeyCheck(3, 0).ok and not KeyCheck(3, 1).ok
