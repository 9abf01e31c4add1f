"""Per-department secrets, encrypted at rest with Fernet under SECRETS_KEY.

SECRETS_KEY may list several keys, newest first (comma separated): everything
is encrypted with the first and decrypted with whichever matches, as
cryptography's MultiFernet does, so a key can be rotated without downtime
(see ``flask secrets rotate``).
"""

from __future__ import annotations

import uuid
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from app.persistence.database import db
from app.persistence.models import DepartmentSecret

KEY_SETTING = "SECRETS_KEY"


class UndecryptableSecret(Exception):
    """A stored secret does not decrypt with any configured key: the wrong
    SECRETS_KEY, never something a retry can fix."""


def parse_keys(value: str) -> tuple[str, ...]:
    """SECRETS_KEY as its keys, newest first; blanks between commas ignored."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


class Keyring:
    """The configured keys: encrypts with the newest, decrypts with any."""

    def __init__(self, setting: str) -> None:
        keys = parse_keys(setting)
        if not keys:
            raise ValueError(f"{KEY_SETTING} lists no key")
        self._fernets = [Fernet(key.encode()) for key in keys]
        self._multi = MultiFernet(self._fernets)

    @property
    def size(self) -> int:
        return len(self._fernets)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._multi.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        """Raises InvalidToken when no configured key opens ``token``."""
        return self._multi.decrypt(token)

    def is_current(self, token: bytes) -> bool:
        """Whether ``token`` is already encrypted under the newest key."""
        try:
            self._fernets[0].decrypt(token)
        except InvalidToken:
            return False
        return True

    def rotate(self, token: bytes) -> bytes:
        """``token`` re-encrypted under the newest key (raises InvalidToken)."""
        return self._multi.rotate(token)


@cache
def keyring(setting: str) -> Keyring:
    """One Keyring per distinct setting value; building Fernets is not free."""
    return Keyring(setting)


def undecryptable_message(what: str) -> str:
    return (
        f"{what}: cannot be decrypted with {KEY_SETTING}, which is not the key it was "
        f"written with (set {KEY_SETTING} to that key, or list it after the new one; "
        "see README 'Secrets and keys')"
    )


class DepartmentSecrets:
    """The SecretStore handed to providers; each call is its own short transaction,
    because providers run outside the step's bookkeeping transactions."""

    def __init__(self, department_pk: uuid.UUID, key: str) -> None:
        self._department_pk = department_pk
        self._keys = keyring(key)

    def get(self, name: str) -> str | None:
        with db.transaction() as session:
            ciphertext = session.scalar(
                select(DepartmentSecret.ciphertext).where(
                    DepartmentSecret.department_pk == self._department_pk,
                    DepartmentSecret.name == name,
                )
            )
        if ciphertext is None:
            return None
        try:
            return self._keys.decrypt(bytes(ciphertext)).decode()
        except InvalidToken:
            raise UndecryptableSecret(undecryptable_message(f"stored secret {name!r}")) from None

    def put(self, name: str, value: str) -> None:
        ciphertext = self._keys.encrypt(value.encode())
        statement = insert(DepartmentSecret).values(
            department_pk=self._department_pk, name=name, ciphertext=ciphertext
        )
        statement = statement.on_conflict_do_update(
            index_elements=["department_pk", "name"], set_={"ciphertext": ciphertext}
        )
        with db.transaction() as session:
            session.execute(statement)

    def delete(self, name: str) -> None:
        with db.transaction() as session:
            session.execute(
                delete(DepartmentSecret).where(
                    DepartmentSecret.department_pk == self._department_pk,
                    DepartmentSecret.name == name,
                )
            )
