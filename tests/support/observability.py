"""Helpers for the observability tests: the secrets that must never leak, and log lines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psycopg2
from cryptography.fernet import Fernet


def department_secrets(dbname: str) -> list[str]:
    """Every stored department secret, decrypted (tenant DB passwords, OAuth secrets)."""
    fernet = Fernet(os.environ["SECRETS_KEY"].encode())
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dbname)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT ciphertext FROM department_secrets")
        values = [fernet.decrypt(bytes(row[0])).decode() for row in cur.fetchall()]
    conn.close()
    return values


def configured_secrets() -> list[str]:
    return [os.environ[name] for name in ("JWT_SECRET", "SECRETS_KEY", "N8N_API_KEY")]


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON records of a process log (gunicorn's and Celery's banners are not ours)."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records
