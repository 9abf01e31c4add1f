"""Creates the state and tenant databases named by the settings, if missing, and
closes every database of the stack to PUBLIC (see app/providers/database_lockdown.py)."""

from __future__ import annotations

import logging
import sys

from sqlalchemy.engine import make_url

from app.config import load_settings, reported_at_start
from app.providers.database_lockdown import (
    STACK_DATABASES,
    ensure,
    grant_existing_tenants,
    lock_down,
)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    with reported_at_start():
        settings = load_settings()
    ensure(settings.DATABASE_URL)
    ensure(settings.tenant_database_url)
    state, tenants = make_url(settings.DATABASE_URL), make_url(settings.tenant_database_url)
    grant_existing_tenants(settings.tenant_database_url)
    closed = lock_down(settings.DATABASE_URL, (*STACK_DATABASES, str(state.database)))
    closed += lock_down(settings.tenant_database_url, (str(tenants.database),))
    print(f"closed to PUBLIC: {', '.join(closed)}", file=sys.stderr)
