"""SQLAlchemy 2.x models and the engine/session holder."""

from app.persistence.database import db

__all__ = ["db"]
