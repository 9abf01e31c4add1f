"""Alembic environment: the URL comes from the same settings as the app."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

import app.oauth.models  # noqa: F401 - registers the OAuth tables on Base
from app.config import load_settings, reported_at_start
from app.persistence import (  # noqa: F401 - register tables
    audit_models,
    final_copy_models,
    webhook_models,
)
from app.persistence.models import Base

if context.config.config_file_name is not None:
    # Keep the app's loggers: migrations may run inside a live process (tests).
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.attributes.get("url")
    if not url:
        with reported_at_start():
            url = load_settings().DATABASE_URL
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
