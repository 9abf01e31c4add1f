"""Departments carry an incarnation: renewed when a deprovisioned department is
provisioned again, and named in its department tokens, so a token of the old
department does not open the new one.

Revision ID: 0005_incarnation
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_incarnation"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "departments",
        sa.Column(
            "incarnation",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        ),
    )


def downgrade() -> None:
    op.drop_column("departments", "incarnation")
