"""Per-department secrets, encrypted at rest with Fernet (SECRETS_KEY)."""

from __future__ import annotations

import uuid

from cryptography.fernet import Fernet
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from app.persistence.database import db
from app.persistence.models import DepartmentSecret


class DepartmentSecrets:
    """The SecretStore handed to providers; each call is its own short transaction,
    because providers run outside the step's bookkeeping transactions."""

    def __init__(self, department_pk: uuid.UUID, key: str) -> None:
        self._department_pk = department_pk
        self._fernet = Fernet(key.encode())

    def get(self, name: str) -> str | None:
        with db.transaction() as session:
            ciphertext = session.scalar(
                select(DepartmentSecret.ciphertext).where(
                    DepartmentSecret.department_pk == self._department_pk,
                    DepartmentSecret.name == name,
                )
            )
        return None if ciphertext is None else self._fernet.decrypt(ciphertext).decode()

    def put(self, name: str, value: str) -> None:
        ciphertext = self._fernet.encrypt(value.encode())
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
