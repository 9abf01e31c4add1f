"""OAuth clients may hold a second, next secret while their credentials rotate.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("oauth_clients", sa.Column("next_secret_hash", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("oauth_clients", "next_secret_hash")
