"""The OpenTelemetry trace a job was submitted in.

Revision ID: 0007_trace_id
Revises: 0006_oauth_next_secret
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_trace_id"
down_revision: str | None = "0006_oauth_next_secret"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("provisioning_jobs", sa.Column("trace_id", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("provisioning_jobs", "trace_id")
