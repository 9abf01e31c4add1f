"""OAuth clients may hold a second, next secret while their credentials rotate.

Revision ID: 0006_oauth_next_secret
Revises: 0005_incarnation
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_oauth_next_secret"
down_revision: str | None = "0005_incarnation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("oauth_clients", sa.Column("next_secret_hash", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("oauth_clients", "next_secret_hash")
