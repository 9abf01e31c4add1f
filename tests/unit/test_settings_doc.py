"""The README's settings table is the model's, so it cannot fall behind."""

from __future__ import annotations

import pytest

from app.config import Settings, environment_names
from app.config_doc import README, effective, render, table
from tests.support.settings_env import REQUIRED, clear_settings_environment


def test_the_readme_settings_table_matches_the_model() -> None:
    text = README.read_text()
    assert render(text) == text, "README settings table is stale: python -m app.config_doc --write"


def test_every_setting_and_every_name_it_is_read_from_is_in_the_table() -> None:
    generated = table()
    for field in Settings.model_fields:
        for name in environment_names(field):
            assert f"`{name}`" in generated
    for name in (
        "API_WORKERS",
        "WORKER_CONCURRENCY",
        "FLOWER_PORT",
        "N8N_PORT",
        "NODE_ENV",
        "N8N_BASE_URL",
        "DB_PASSWORD",
    ):
        assert f"| `{name}`" in generated or f"or `{name}`" in generated


def test_every_setting_is_described() -> None:
    missing = [name for name, info in Settings.model_fields.items() if not info.description]
    assert missing == [], f"add a docstring under each of {missing} in app/config_fields.py"


def test_effective_settings_name_their_source_and_never_show_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_settings_environment(monkeypatch)
    for name, value in {
        **REQUIRED,
        "NODE_ENV": "test",
        "STEP_TIMEOUT": "60000",
        "DB_PASSWORD": "hunter2-pw",
    }.items():
        monkeypatch.setenv(name, value)
    lines = effective().splitlines()
    assert "APP_ENV = 'test'  (NODE_ENV)" in lines
    assert "STEP_TIMEOUT = 60.0  (STEP_TIMEOUT)" in lines
    assert (
        "DATABASE_URL = 'postgresql+psycopg2://postgres:***@127.0.0.1:5432/provisioning'"
        "  (default)" in lines
    )
    text = "\n".join(lines)
    assert "hunter2" not in text and REQUIRED["JWT_SECRET"] not in text
