"""Final copies: a tenant schema exported, encrypted, when its department is
deprovisioned with ``finalCopy``, kept for FINAL_COPY_RETENTION_DAYS."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.persistence.models import Base, utcnow


class FinalCopy(Base):
    __tablename__ = "final_copies"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    department_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )
    department_id: Mapped[str] = mapped_column(String(31))
    # The deprovisioning job that takes the copy before it drops the schema.
    job_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16))  # pending, stored, restored, failed
    schema: Mapped[str] = mapped_column(String(80))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # pg_dump's custom format, Fernet-encrypted under SECRETS_KEY (rotated with the rest).
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    restored_at: Mapped[datetime | None]
    restored_by: Mapped[str | None] = mapped_column(String(320))
