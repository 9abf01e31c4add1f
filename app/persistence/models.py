"""The orchestrator's own tables: the source of truth for what exists.

A department's ``resources`` maps each saga step to the non-secret outputs of
the resources that step created and that have not been removed since.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def current_trace_id() -> str | None:
    """The trace the job is created in (the API request's), so its id can be
    shown with the job and searched for in a tracing backend."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def current_trace_parent() -> str | None:
    """The same context as a W3C traceparent, so that whichever process later
    sends the job's messages can send them in this trace."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    department_id: Mapped[str] = mapped_column(String(31), unique=True)
    department_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), index=True)
    config: Mapped[dict[str, Any]]
    resources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deployment_url: Mapped[str | None] = mapped_column(String(500))
    container_url: Mapped[str | None] = mapped_column(String(500))
    deletion_protection: Mapped[bool] = mapped_column(default=False)
    config_version: Mapped[int] = mapped_column(Integer, default=0)
    # Renewed when a deprovisioned department is provisioned again; department
    # tokens name it, so an old token does not open the new department.
    incarnation: Mapped[uuid.UUID] = mapped_column(
        default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    # The failing checks that made the department DEGRADED, as last seen.
    drift: Mapped[dict[str, Any] | None]
    last_health_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    jobs: Mapped[list[ProvisioningJob]] = relationship(back_populates="department")


class DepartmentSecret(Base):
    """Fernet-encrypted secrets (tenant DB password, OAuth client secret)."""

    __tablename__ = "department_secrets"

    department_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProvisioningJob(Base):
    __tablename__ = "provisioning_jobs"
    __table_args__ = (
        # One job in flight per department, enforced by the database itself.
        Index(
            "uq_one_active_job_per_department",
            "department_pk",
            unique=True,
            postgresql_where=text("state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')"),
        ),
        # The waiting line (jobs not yet admitted), in submission order.
        Index(
            "ix_jobs_waiting",
            "created_at",
            postgresql_where=text(
                "admitted_at IS NULL AND state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')"
            ),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    department_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(30), index=True)
    # Bumped whenever the job is (re)dispatched; task messages of older
    # generations are stale and do nothing when they arrive.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    config: Mapped[dict[str, Any]]
    # An update job's compensation restores this configuration.
    previous_config: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    cancel_requested_at: Mapped[datetime | None]
    cancel_requested_by: Mapped[str | None] = mapped_column(String(320))
    requested_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    # When the job got a place among the MAX_ACTIVE_JOBS running ones (None:
    # still waiting; services/admission.py).
    admitted_at: Mapped[datetime | None]
    # Limits are fixed when the job is submitted, so every worker applies the
    # same ones whatever its own settings. The deadline moves to admission time
    # plus the same budget when the job is admitted: waiting costs it nothing.
    deadline_at: Mapped[datetime | None]
    step_timeout: Mapped[float] = mapped_column(default=60.0)
    completed_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    resume_count: Mapped[int] = mapped_column(Integer, default=0)
    trace_id: Mapped[str | None] = mapped_column(String(32), default=current_trace_id)
    trace_parent: Mapped[str | None] = mapped_column(String(55), default=current_trace_parent)

    department: Mapped[Department] = relationship(back_populates="jobs")
    steps: Mapped[list[JobStep]] = relationship(
        back_populates="job", order_by="JobStep.position", cascade="all, delete-orphan"
    )


class JobStep(Base):
    __tablename__ = "job_steps"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("provisioning_jobs.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(10))  # "create" or "delete"
    status: Mapped[str] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    compensation_attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)

    job: Mapped[ProvisioningJob] = relationship(back_populates="steps")


class DepartmentConfigVersion(Base):
    """Every configuration a department has run with: who, when, and what changed."""

    __tablename__ = "department_config_versions"
    __table_args__ = (UniqueConstraint("department_pk", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    department_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]]
    diff: Mapped[dict[str, Any]]
    actor: Mapped[str | None] = mapped_column(String(320))
    job_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobLog(Base):
    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("provisioning_jobs.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(10))
    step: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)


class IdempotencyRecord(Base):
    """The first response given for an Idempotency-Key, replayed for repeats."""

    __tablename__ = "idempotency_records"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
