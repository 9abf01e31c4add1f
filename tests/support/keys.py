"""Helpers for the SECRETS_KEY tests: stored ciphertexts read and rewritten
directly in PostgreSQL, and the real `flask` CLI run as its own process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from cryptography.fernet import Fernet, MultiFernet

from tests.support import stack


def _connect(dbname: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dbname)


def ciphertexts(dbname: str, department_id: str) -> dict[str, bytes]:
    conn = _connect(dbname)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.name, s.ciphertext FROM department_secrets s "
            "JOIN departments d ON d.id = s.department_pk WHERE d.department_id = %s",
            (department_id,),
        )
        found = {name: bytes(ct) for name, ct in cur.fetchall()}
    conn.close()
    return found


def all_ciphertexts(dbname: str) -> list[bytes]:
    conn = _connect(dbname)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT ciphertext FROM department_secrets")
        found = [bytes(row[0]) for row in cur.fetchall()]
    conn.close()
    return found


def write_ciphertexts(dbname: str, department_id: str, values: dict[str, bytes]) -> None:
    conn = _connect(dbname)
    with conn, conn.cursor() as cur:
        for name, ciphertext in values.items():
            cur.execute(
                "UPDATE department_secrets s SET ciphertext = %s FROM departments d "
                "WHERE d.id = s.department_pk AND d.department_id = %s AND s.name = %s",
                (ciphertext, department_id, name),
            )
    conn.close()


@contextmanager
def under_foreign_key(
    dbname: str, department_id: str, current_key: str, names: tuple[str, ...] | None = None
) -> Iterator[str]:
    """The department's secrets re-encrypted with a key nobody configured (what
    another checkout sharing the database writes); put back afterwards."""
    original = ciphertexts(dbname, department_id)
    foreign = Fernet.generate_key().decode()
    ring = MultiFernet([Fernet(k.strip().encode()) for k in current_key.split(",")])
    chosen = {n: c for n, c in original.items() if names is None or n in names}
    write_ciphertexts(
        dbname,
        department_id,
        {n: Fernet(foreign.encode()).encrypt(ring.decrypt(c)) for n, c in chosen.items()},
    )
    try:
        yield foreign
    finally:
        write_ciphertexts(dbname, department_id, original)


def flask(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(stack.VENV_BIN / "flask"), *args],
        cwd=stack.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]
