"""The life of SECRETS_KEY: is it the right one, and moving every secret to a new one.

Both walk every stored ciphertext. Checking is cheap (a Fernet decrypt is
microseconds), so the API, the worker and the CLI do it at start instead of
letting jobs find out one InvalidToken at a time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import ColumnElement, and_, literal, select, tuple_, update
from sqlalchemy.orm import Session

from app.persistence.database import db
from app.persistence.final_copy_models import FinalCopy
from app.persistence.models import Department, DepartmentSecret
from app.persistence.secrets import KEY_SETTING, Keyring, keyring

logger = logging.getLogger("provisioning")
BATCH = 200
SHOWN_DEPARTMENTS = 5


@dataclass(frozen=True)
class KeyCheck:
    """How many stored secrets the configured keys open."""

    total: int
    undecryptable: int
    departments: tuple[str, ...] = ()
    # Stored under an older key listed after the newest: fine, but worth rotating.
    not_current: int = 0

    @property
    def ok(self) -> bool:
        return self.undecryptable == 0

    def line(self) -> str:
        """The one line that names the setting and says what to do."""
        shown = ", ".join(self.departments[:SHOWN_DEPARTMENTS])
        more = len(self.departments) - SHOWN_DEPARTMENTS
        if more > 0:
            shown += f" and {more} more"
        return (
            f"{KEY_SETTING} does not decrypt {self.undecryptable} of {self.total} stored "
            f"secrets (departments: {shown}): it is not the key they were written with. "
            f"Set {KEY_SETTING} to that key, or list it after the new one "
            "(newest first, comma separated); see README 'Secrets and keys'"
        )


@dataclass
class RotationReport:
    total: int = 0
    rotated: int = 0
    already_current: int = 0
    undecryptable: int = 0
    failed_departments: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "rotated": self.rotated,
            "alreadyCurrent": self.already_current,
            "undecryptable": self.undecryptable,
        }


@dataclass(frozen=True)
class _Row:
    department_pk: uuid.UUID
    name: str
    department_id: str
    ciphertext: bytes


def _batches(start_after: tuple[uuid.UUID, str] | None = None) -> Iterator[list[_Row]]:
    """Every stored secret in primary-key order, a batch per short transaction."""
    cursor = start_after
    while True:
        with db.transaction() as session:
            rows = _read_batch(session, cursor)
        if not rows:
            return
        yield rows
        cursor = (rows[-1].department_pk, rows[-1].name)


def _read_batch(session: Session, cursor: tuple[uuid.UUID, str] | None) -> list[_Row]:
    query = (
        select(
            DepartmentSecret.department_pk,
            DepartmentSecret.name,
            Department.department_id,
            DepartmentSecret.ciphertext,
        )
        .join(Department, Department.id == DepartmentSecret.department_pk)
        .order_by(DepartmentSecret.department_pk, DepartmentSecret.name)
        .limit(BATCH)
    )
    if cursor is not None:
        key = tuple_(DepartmentSecret.department_pk, DepartmentSecret.name)
        query = query.where(key > tuple_(literal(cursor[0]), literal(cursor[1])))
    return [_Row(pk, name, dept, bytes(ct)) for pk, name, dept, ct in session.execute(query)]


def _opens(keys: Keyring, token: bytes) -> bool:
    try:
        keys.decrypt(token)
    except InvalidToken:
        return False
    return True


def check_stored_secrets(setting: str) -> KeyCheck:
    keys = keyring(setting)
    total = bad = stale = 0
    departments: list[str] = []
    for rows in _batches():
        for row in rows:
            total += 1
            if not _opens(keys, row.ciphertext):
                bad += 1
                if row.department_id not in departments:
                    departments.append(row.department_id)
            elif not keys.is_current(row.ciphertext):
                stale += 1
    return KeyCheck(total, bad, tuple(departments), stale)


def unreadable_secret_names(session: Session, department_pk: uuid.UUID, setting: str) -> list[str]:
    """The department's stored secrets that no configured key opens."""
    keys = keyring(setting)
    rows = session.execute(
        select(DepartmentSecret.name, DepartmentSecret.ciphertext).where(
            DepartmentSecret.department_pk == department_pk
        )
    )
    return sorted(name for name, ciphertext in rows if not _opens(keys, bytes(ciphertext)))


def rotate_stored_secrets(setting: str) -> RotationReport:
    """Re-encrypts every stored secret under the newest key.

    Idempotent (a secret already under the newest key is left alone) and
    resumable (each batch commits on its own; a rerun skips what is done). A
    row changed meanwhile by a job was written under the newest key already,
    so the compare-and-set below simply leaves it.
    """
    keys = keyring(setting)
    report = RotationReport()
    for rows in _batches():
        with db.transaction() as session:
            for row in rows:
                _rotate_one(session, keys, row, report)
    _rotate_final_copies(keys, report)
    return report


def _rotate_final_copies(keys: Keyring, report: RotationReport) -> None:
    """Kept copies are encrypted under the key too; one per transaction (they are large)."""
    with db.transaction() as session:
        ids = list(session.scalars(select(FinalCopy.id).where(FinalCopy.ciphertext.is_not(None))))
    for copy_id in ids:
        with db.transaction() as session:
            found = session.execute(
                select(FinalCopy.department_id, FinalCopy.ciphertext).where(FinalCopy.id == copy_id)
            ).first()
            if found is None or found[1] is None:
                continue  # purged meanwhile
            row = _Row(copy_id, "final copy", found[0], bytes(found[1]))
            _rotate_one(session, keys, row, report, FinalCopy.id == copy_id)


def _rotate_one(
    session: Session,
    keys: Keyring,
    row: _Row,
    report: RotationReport,
    where: ColumnElement[bool] | None = None,
) -> None:
    report.total += 1
    if keys.is_current(row.ciphertext):
        report.already_current += 1
        return
    try:
        fresh = keys.rotate(row.ciphertext)
    except InvalidToken:
        report.undecryptable += 1
        report.failed_departments.add(row.department_id)
        return
    table: Any = FinalCopy if where is not None else DepartmentSecret
    if where is None:
        where = and_(
            DepartmentSecret.department_pk == row.department_pk, DepartmentSecret.name == row.name
        )
    changed = session.execute(
        update(table).where(where, table.ciphertext == row.ciphertext).values(ciphertext=fresh)
    )
    if getattr(changed, "rowcount", 0):
        report.rotated += 1
    else:
        report.already_current += 1  # rewritten (under the newest key) meanwhile
