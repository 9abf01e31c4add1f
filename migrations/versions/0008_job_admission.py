"""Jobs wait for capacity: when each was admitted (its deadline starts then),
and the trace context its steps are sent in.

Revision ID: 0008_job_admission
Revises: 0007_trace_id
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_job_admission"
down_revision: str | None = "0007_trace_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "provisioning_jobs", sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True)
    )
    # The submitting request's context, so that a waiting job's steps, sent by
    # whichever process admits it, stay in the trace it was submitted in.
    op.add_column("provisioning_jobs", sa.Column("trace_parent", sa.String(55), nullable=True))
    # Every job that exists already was dispatched when it was submitted.
    op.execute("UPDATE provisioning_jobs SET admitted_at = created_at")
    # The waiting line, read on every admission and queued status request.
    op.create_index(
        "ix_jobs_waiting",
        "provisioning_jobs",
        ["created_at"],
        postgresql_where=sa.text(
            "admitted_at IS NULL AND state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_waiting", table_name="provisioning_jobs")
    op.drop_column("provisioning_jobs", "trace_parent")
    op.drop_column("provisioning_jobs", "admitted_at")
