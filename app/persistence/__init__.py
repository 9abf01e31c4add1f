"""SQLAlchemy 2.x models and the engine/session holder."""

from app.persistence import audit_models, webhook_models  # noqa: F401 - register their tables
from app.persistence.database import db

__all__ = ["db"]
