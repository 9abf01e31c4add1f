"""How settings are read: units, the original service's names and meanings,
strict values, and every problem reported at once. No running stack needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from app.config import ConfigError, Settings, load_settings
from app.config_types import parse_duration
from tests.support.settings_env import REQUIRED, clear_settings_environment

# The original service's "Environment Variables" block, verbatim.
ORIGINAL_ENV = """\
# Server Configuration
PORT=3000
NODE_ENV=production

# JWT Authentication
JWT_SECRET=your-secret-key-here

# Database Configuration
DB_HOST=localhost
DB_PORT=5432
DB_NAME=federation
DB_USER=postgres
DB_PASSWORD=your-password

# External Service API Keys
RAILWAY_API_TOKEN=your-railway-token
N8N_API_KEY=your-n8n-api-key
N8N_BASE_URL=https://jayconnorexe.app.n8n.cloud

# Timeouts (milliseconds)
MAX_PROVISIONING_TIME=300000  # 5 minutes
STEP_TIMEOUT=60000            # 1 minute
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_environment(monkeypatch)


def _problems(**env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(**env)
    return str(caught.value)


def _load(**env: str) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return load_settings(REQUIRED)


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("300s", 300),
        ("5m", 300),
        ("300000ms", 300),
        ("1h", 3600),
        ("1.5s", 1.5),
        ("300000", 300),  # bare: milliseconds, the original's unit
        ("300000  # 5 minutes", 300),  # as docker's env_file passes the original's line
    ],
)
def test_the_job_deadline_takes_units_and_bare_milliseconds(written: str, seconds: float) -> None:
    settings = _load(MAX_PROVISIONING_TIME=written)
    deadline = settings.MAX_PROVISIONING_TIME
    assert deadline == seconds


def test_the_step_timeout_reads_bare_numbers_as_milliseconds() -> None:
    settings = _load(STEP_TIMEOUT="60000")
    assert settings.STEP_TIMEOUT == 60


def test_this_projects_own_durations_keep_bare_seconds() -> None:
    settings = _load(STALL_TIMEOUT="5", RETRY_BASE="200ms", DRIFT_CHECK_INTERVAL="0")
    assert settings.STALL_TIMEOUT == 5
    assert settings.RETRY_BASE == 0.2
    assert settings.DRIFT_CHECK_INTERVAL == 0


def test_a_bare_number_too_small_for_milliseconds_is_refused_as_ambiguous() -> None:
    message = _problems(STEP_TIMEOUT="60")
    assert "STEP_TIMEOUT='60'" in message
    assert "milliseconds" in message and "write 60s if you meant seconds" in message


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MAX_PROVISIONING_TIME", "2d", "not a duration"),
        ("MAX_PROVISIONING_TIME", "25h", "above the maximum"),
        ("STEP_TIMEOUT", "500ms", "below the minimum"),
        ("STEP_TIMEOUT", "5 minutes", "not a duration"),
        ("STEP_TIMEOUT", "-5s", "not a duration"),
        ("STEP_TIMEOUT", "5M", "not a duration"),
        ("STALL_TIMEOUT", "0", "below the minimum"),
        ("SWEEP_INTERVAL", "soon", "not a duration"),
    ],
)
def test_bad_durations_are_refused_by_name(name: str, value: str, says: str) -> None:
    message = _problems(**{name: value})
    assert f"{name}={value!r}" in message and says in message


def test_python_overrides_are_seconds_whatever_the_variable() -> None:
    settings = load_settings({**REQUIRED, "STEP_TIMEOUT": 2, "MAX_PROVISIONING_TIME": 5})
    assert (settings.STEP_TIMEOUT, settings.MAX_PROVISIONING_TIME) == (2, 5)
    assert parse_duration(2, "ms") == 2


@pytest.mark.parametrize(("written", "value"), [("true", True), ("yes", True), ("0", False)])
def test_booleans_read_their_usual_spellings(written: str, value: bool) -> None:
    assert _load(AUTO_REPAIR=written).AUTO_REPAIR is value


@pytest.mark.parametrize("written", ["ture", "enabled", "2"])
def test_a_misspelt_boolean_is_an_error_not_false(written: str) -> None:
    message = _problems(AUTO_REPAIR=written)
    assert f"AUTO_REPAIR={written!r}: not a boolean" in message


def test_an_empty_variable_means_unset() -> None:
    settings = _load(AUTO_REPAIR="", STEP_TIMEOUT="")
    assert settings.AUTO_REPAIR is False and settings.STEP_TIMEOUT == 60


def test_every_bad_setting_is_reported_at_once_in_one_message() -> None:
    message = _problems(
        AUTO_REPAIR="ture",
        STEP_TIMEOUT="60",
        RETRY_MAX="3.5",
        PORT="70000",
        NODE_ENV="staging",
        CONTAINER_RUNTIME="kubernetes",
        WEBHOOK_SECRET="short",
    )
    lines = message.splitlines()
    assert lines[0] == "7 invalid settings (environment or .env):"
    named = [line.split("=")[0].split(":")[0].removeprefix("  - ") for line in lines[1:]]
    assert sorted(named) == sorted(
        [
            "AUTO_REPAIR",
            "STEP_TIMEOUT",
            "RETRY_MAX",
            "PORT",
            "NODE_ENV",
            "CONTAINER_RUNTIME",
            "WEBHOOK_SECRET",
        ]
    )
    assert "Traceback" not in message


def test_a_setting_that_fails_to_parse_is_not_reported_twice() -> None:
    # CONTAINER_RUNTIME is unparsable, so the railway rule reading it stays quiet.
    message = _problems(CONTAINER_RUNTIME="railwy")
    assert message.count("CONTAINER_RUNTIME") == 1


def test_secret_values_are_never_echoed() -> None:
    message = _problems(WEBHOOK_SECRET="hunter2-short", DB_PORT="x")
    assert "hunter2" not in message and "DB_PORT='x'" in message


def test_a_misspelt_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="STEP_TIMOUT"):
        load_settings({**REQUIRED, "STEP_TIMOUT": 5})


def test_the_original_names_are_read() -> None:
    settings = _load(
        NODE_ENV="production",
        N8N_BASE_URL="https://n8n.example",
        DB_HOST="db.internal",
        DB_PORT="6543",
        DB_NAME="federation",
        DB_USER="orchestrator",
        DB_PASSWORD="p@ss/word",
    )
    assert settings.APP_ENV == "production"
    assert settings.N8N_URL == "https://n8n.example"
    url = make_url(settings.DATABASE_URL)
    assert (url.host, url.port, url.database) == ("db.internal", 6543, "federation")
    assert (url.username, url.password) == ("orchestrator", "p@ss/word")


def test_a_bare_postgresql_url_keeps_meaning_psycopg2() -> None:
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which is not installed
    settings = _load(
        DATABASE_URL="postgresql://orchestrator:pw@db.internal/federation",
        TENANT_DATABASE_URL="postgresql://provisioner@db.internal/tenants",
    )
    assert make_url(settings.DATABASE_URL).drivername == "postgresql+psycopg2"
    assert make_url(settings.tenant_database_url).drivername == "postgresql+psycopg2"
    assert make_url(settings.DATABASE_URL).password == "pw"


def test_this_projects_names_win_over_the_originals() -> None:
    settings = _load(
        APP_ENV="test",
        NODE_ENV="production",
        N8N_URL="http://a",
        N8N_BASE_URL="http://b",
        DATABASE_URL="postgresql+psycopg2://u@h/state",
        DB_NAME="federation",
    )
    assert settings.APP_ENV == "test" and settings.N8N_URL == "http://a"
    assert settings.DATABASE_URL.endswith("/state")


def test_a_bad_original_name_is_reported_as_written() -> None:
    assert "NODE_ENV='staging'" in _problems(NODE_ENV="staging")


def _original_env(tmp_path: Path, extra: str = "") -> dict[str, str]:
    env_file = tmp_path / ".env"
    env_file.write_text(ORIGINAL_ENV + extra)
    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def test_the_original_env_file_verbatim_fails_only_on_its_placeholder_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _original_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()[1:]
    # NODE_ENV=production: a 20-character placeholder secret is refused, and this
    # project encrypts stored credentials, so it needs its own key.
    assert [line.split(":")[0].strip(" -") for line in lines] == ["JWT_SECRET", "SECRETS_KEY"]


def test_the_original_env_file_with_real_secrets_gives_its_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = f"JWT_SECRET={'s' * 40}\nSECRETS_KEY={REQUIRED['SECRETS_KEY']}\n"
    for name, value in _original_env(tmp_path, secrets).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (settings.MAX_PROVISIONING_TIME, settings.STEP_TIMEOUT) == (300, 60)
    assert settings.APP_ENV == "production" and settings.PORT == 3000
    assert settings.N8N_URL == "https://jayconnorexe.app.n8n.cloud"
    assert settings.N8N_API_KEY == "your-n8n-api-key"
    assert settings.RAILWAY_API_TOKEN == "your-railway-token"
    url = make_url(settings.DATABASE_URL)
    assert (url.host, url.port, url.database, url.username) == (
        "localhost",
        5432,
        "federation",
        "postgres",
    )


def test_env_file_names_an_env_file_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotenv import load_dotenv

    env_file = tmp_path / "original.env"
    env_file.write_text(ORIGINAL_ENV.replace("NODE_ENV=production", "NODE_ENV=test"))
    for name in dotenv_values(env_file):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)  # so whatever the file sets is removed afterwards
    monkeypatch.setattr("app.config.load_dotenv", load_dotenv)
    monkeypatch.setenv("ENV_FILE", str(env_file))
    monkeypatch.setenv("STEP_TIMEOUT", "2m")  # the environment still wins over the file
    settings = load_settings(REQUIRED)
    assert settings.MAX_PROVISIONING_TIME == 300 and settings.STEP_TIMEOUT == 120
    assert settings.N8N_URL == "https://jayconnorexe.app.n8n.cloud"


def test_secret_names_are_recognised_by_their_ending() -> None:
    from app.config import is_secret

    for name in (
        "JWT_SECRET",
        "WEBHOOK_SECRETS",
        "RAILWAY_API_TOKEN",
        "DB_PASSWORD",
        "SECRETS_KEY",
        "TENANT_DATABASE_URL",
        "REDIS_URL",
    ):
        assert is_secret(name), name
    for name in ("OAUTH_TOKEN_TTL", "PORT", "N8N_URL", "DB_USER"):
        assert not is_secret(name), name


def test_caddy_admin_defaults_to_the_socket_caddy_sh_opens(tmp_path: Path) -> None:
    settings = _load(RUN_DIR=str(tmp_path))
    assert settings.caddy_admin_url == f"unix://{tmp_path}/caddy-home/admin.sock"


def test_the_deprecated_admin_port_still_means_a_loopback_port() -> None:
    assert _load(CADDY_ADMIN_PORT="2019").caddy_admin_url == "http://127.0.0.1:2019"
    chosen = _load(CADDY_ADMIN_PORT="2019", CADDY_ADMIN_URL="unix:///run/caddy/admin.sock")
    assert chosen.caddy_admin_url == "unix:///run/caddy/admin.sock"


@pytest.mark.parametrize(
    "url", ["unix://relative/admin.sock", "ftp://host/", "unix:///" + "x" * 120, "http://"]
)
def test_a_caddy_admin_url_of_the_wrong_shape_is_refused(url: str) -> None:
    assert "CADDY_ADMIN_URL" in _problems(CADDY_ADMIN_URL=url)
