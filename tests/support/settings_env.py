"""Unit tests of settings start from an environment without any setting."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app.config import Settings, environment_names

# What every valid configuration needs beyond the defaults.
REQUIRED = {"JWT_SECRET": "j" * 40, "SECRETS_KEY": Fernet.generate_key().decode()}


def clear_settings_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other tests export their settings, and .env may hold a developer's: drop both."""
    for field in Settings.model_fields:
        for name in environment_names(field):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("app.config.load_dotenv", lambda *a, **k: False)
