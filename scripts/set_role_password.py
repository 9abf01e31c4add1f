"""Sets a PostgreSQL role's password from a file, as a SCRAM-SHA-256 verifier.

    python scripts/set_role_password.py ROLE PASSWORD_FILE

The password is read from the file (never a command-line argument, which any
local user can read in /proc/<pid>/cmdline) and only its verifier is sent, so
the plain text cannot land in the server log or pg_stat_activity. Connects as
the superuser ``postgres`` to PGHOST/PGPORT (default 127.0.0.1:5432).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg2
from psycopg2 import sql

from app.providers.postgres_access import scram_verifier


def main(role: str, password_file: str) -> None:
    password = Path(password_file).read_text().strip()
    if not password:
        sys.exit(f"{password_file} is empty")
    conn = psycopg2.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=int(os.environ.get("PGPORT", "5432")),
        user="postgres",
        dbname="postgres",
    )
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(scram_verifier(password))
            )
        )
    conn.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: set_role_password.py ROLE PASSWORD_FILE")
    main(sys.argv[1], sys.argv[2])
