"""Lifecycle: cancel, update with configuration history, drift, deletion protection.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_WHERE_OLD = "state NOT IN ('COMPLETED', 'FAILED')"
ACTIVE_WHERE_NEW = "state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')"


def upgrade() -> None:
    op.add_column("departments", sa.Column("deletion_protection", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    op.add_column("departments", sa.Column("config_version", sa.Integer(), nullable=False,
                                           server_default="0"))
    op.add_column("departments", sa.Column("drift", postgresql.JSONB(), nullable=True))
    op.add_column("departments", sa.Column("last_health_at", sa.DateTime(timezone=True),
                                           nullable=True))
    op.add_column("provisioning_jobs", sa.Column("previous_config", postgresql.JSONB(),
                                                 nullable=True))
    op.add_column("provisioning_jobs", sa.Column("cancel_requested_at",
                                                 sa.DateTime(timezone=True), nullable=True))
    op.add_column("provisioning_jobs", sa.Column("cancel_requested_by", sa.String(320),
                                                 nullable=True))
    op.create_table(
        "department_config_versions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("department_pk", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False),
        sa.Column("diff", postgresql.JSONB(), nullable=False),
        sa.Column("actor", sa.String(320), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["department_pk"], ["departments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("department_pk", "version"),
    )
    op.create_index("ix_department_config_versions_department_pk",
                    "department_config_versions", ["department_pk"])
    # Departments that are up already get their current configuration as version 1.
    op.execute(
        "INSERT INTO department_config_versions (department_pk, version, config, diff, actor,"
        " created_at) SELECT id, 1, config, '{}'::jsonb, 'migration', now() FROM departments"
        " WHERE status = 'ACTIVE'"
    )
    op.execute("UPDATE departments SET config_version = 1 WHERE status = 'ACTIVE'")
    _replace_active_index(ACTIVE_WHERE_NEW)


def downgrade() -> None:
    _replace_active_index(ACTIVE_WHERE_OLD)
    op.drop_index("ix_department_config_versions_department_pk",
                  table_name="department_config_versions")
    op.drop_table("department_config_versions")
    for column in ("cancel_requested_by", "cancel_requested_at", "previous_config"):
        op.drop_column("provisioning_jobs", column)
    for column in ("last_health_at", "drift", "config_version", "deletion_protection"):
        op.drop_column("departments", column)


def _replace_active_index(where: str) -> None:
    op.drop_index("uq_one_active_job_per_department", table_name="provisioning_jobs")
    op.create_index("uq_one_active_job_per_department", "provisioning_jobs", ["department_pk"],
                    unique=True, postgresql_where=sa.text(where))
