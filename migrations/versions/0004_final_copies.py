"""Final copies of tenant schemas, kept after a deprovision that asked for one.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "final_copies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("department_pk", sa.Uuid(), nullable=False),
        sa.Column("department_id", sa.String(31), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("schema", sa.String(80), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("stored_at", TIMESTAMP, nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("restored_at", TIMESTAMP, nullable=True),
        sa.Column("restored_by", sa.String(320), nullable=True),
        sa.ForeignKeyConstraint(["department_pk"], ["departments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_final_copies_department_pk", "final_copies", ["department_pk"])
    op.create_index("ix_final_copies_job_id", "final_copies", ["job_id"])
    op.create_index("ix_final_copies_expires_at", "final_copies", ["expires_at"])


def downgrade() -> None:
    op.drop_table("final_copies")
