"""Creates the state and tenant databases named by the settings, if missing."""

from __future__ import annotations

import sys

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from app.config import load_settings, reported_at_start


def ensure(url_text: str) -> None:
    url = make_url(url_text)
    conn = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname="postgres",
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
            print(f"created database {url.database}", file=sys.stderr)
    conn.close()


if __name__ == "__main__":
    with reported_at_start():
        settings = load_settings()
    ensure(settings.DATABASE_URL)
    ensure(settings.tenant_database_url)
