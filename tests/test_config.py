"""Settings fail at start, naming the setting, rather than at first use."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings
from tests.support.settings_env import REQUIRED, clear_settings_environment


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_environment(monkeypatch)


GOOD = {**REQUIRED, "APP_ENV": "test"}


def test_good_settings_load() -> None:
    settings = load_settings(GOOD)
    assert settings.STEP_TIMEOUT == 60 and settings.MAX_PROVISIONING_TIME == 300
    assert settings.tenant_database_url.endswith("_tenants")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"SECRETS_KEY": ""}, "SECRETS_KEY"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"APP_ENV": "production", "FAULT_INJECTION_ENABLED": True}, "FAULT_INJECTION_ENABLED"),
        ({"CONTAINER_RUNTIME": "kubernetes"}, "CONTAINER_RUNTIME"),
        ({"STEP_TIMEOUT": 0}, "STEP_TIMEOUT"),
        ({"RAILWAY_TOKEN_KIND": "bearer"}, "RAILWAY_TOKEN_KIND"),
        (
            {
                "CONTAINER_RUNTIME": "railway",
                "RAILWAY_API_TOKEN": "t",
                "RAILWAY_PROJECT_ID": "p",
                "RAILWAY_ENVIRONMENT_ID": "e",
                "RAILWAY_IMAGE": "i",
                "RAILWAY_DEPLOY_TIMEOUT": 60,
            },
            "RAILWAY_DEPLOY_TIMEOUT",
        ),
    ],
)
def test_bad_settings_are_refused_by_name(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**GOOD, **overrides})


def test_environment_values_are_parsed_and_bad_numbers_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEP_TIMEOUT", "12.5s")
    monkeypatch.setenv("REGIONS", "a, b")
    settings = load_settings(GOOD)
    assert settings.STEP_TIMEOUT == 12.5 and settings.REGIONS == ("a", "b")
    monkeypatch.setenv("STEP_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="STEP_TIMEOUT"):
        load_settings(GOOD)
