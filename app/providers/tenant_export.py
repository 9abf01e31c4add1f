"""A tenant schema out to bytes (pg_dump) and back in (pg_restore).

Both run logged in as the tenant's own role, like every other touch of tenant
data (see postgres_access.py): a dump of tenant-defined objects is replayed
with the tenant's rights, so nothing in it (a default, an index expression, a
trigger) can run as the provisioning identity. The password travels in
PGPASSWORD, never on a command line.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.providers.base import DepartmentContext, ProviderError
from app.providers.database_postgres import PASSWORD_SECRET, role_name, schema_name

TIMEOUT_SECONDS = 600
# A restore goes into the schema the re-provisioned department already owns:
# its own CREATE SCHEMA entry (which needs rights on the database) is skipped.
SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ SCHEMA ")


class SchemaMissing(ProviderError):
    """There is no tenant schema to copy (already removed)."""


class TenantExporter:
    def __init__(self, *, tenant_database_url: str) -> None:
        url = make_url(tenant_database_url)
        self._host = url.host or "127.0.0.1"
        self._port = str(url.port or 5432)
        self._database = url.database or ""

    def export(self, context: DepartmentContext) -> bytes:
        """The tenant schema in pg_dump's custom format (compressed)."""
        args = ["pg_dump", "-Fc", "--no-owner", "--no-privileges", "-n", schema_name(context)]
        result = self._run(context, [*args, *self._target(context)])
        if b"no matching schemas were found" in result.stderr:
            raise SchemaMissing(f"schema {schema_name(context)} does not exist")
        self._raise_unless_ok("pg_dump", result)
        return result.stdout

    def restore(self, context: DepartmentContext, dump: bytes) -> None:
        """Replaces the tables in ``dump`` in the department's (existing) schema."""
        with tempfile.TemporaryDirectory() as directory:
            archive = Path(directory) / "copy.dump"
            archive.write_bytes(dump)
            archive.chmod(0o600)
            listed = subprocess.run(
                ["pg_restore", "-l", str(archive)], capture_output=True, timeout=60
            )
            self._raise_unless_ok("pg_restore -l", listed)
            entries = [
                line for line in listed.stdout.decode().splitlines() if not SCHEMA_ENTRY.match(line)
            ]
            selection = Path(directory) / "entries.list"
            selection.write_text("\n".join(entries) + "\n")
            args = [
                "pg_restore", "--no-owner", "--no-privileges", "--clean", "--if-exists",
                "--single-transaction", "--exit-on-error", "-L", str(selection),
            ]  # fmt: skip
            result = self._run(context, [*args, *self._target(context), str(archive)])
        self._raise_unless_ok("pg_restore", result)

    def _target(self, context: DepartmentContext) -> list[str]:
        return ["-h", self._host, "-p", self._port, "-U", role_name(context), "-d", self._database]

    @staticmethod
    def _run(context: DepartmentContext, args: list[str]) -> subprocess.CompletedProcess[Any]:
        password = context.secrets.get(PASSWORD_SECRET)
        if not password:
            raise ProviderError(f"no database password stored for {context.department_id}")
        env = {"PATH": os.environ.get("PATH", os.defpath), "PGPASSWORD": password}
        try:
            return subprocess.run(args, capture_output=True, env=env, timeout=TIMEOUT_SECONDS)
        except FileNotFoundError as exc:
            raise ProviderError(f"{args[0]} is not installed: {exc}") from exc

    @staticmethod
    def _raise_unless_ok(what: str, result: subprocess.CompletedProcess[Any]) -> None:
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip()[-1000:]
            raise ProviderError(f"{what} failed (exit {result.returncode}): {detail}")
