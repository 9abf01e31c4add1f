"""The settings, by group. Each is named after its environment variable and
documented by the docstring under it (the README's table is generated from
these: `python -m app.config_doc --write`). The original service's variable
names are accepted as aliases (`validation_alias`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.config_types import (
    CommaList,
    JobDeadline,
    RateLimit,
    Seconds,
    SecondsOrOff,
    StepTimeout,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class _Group(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        populate_by_name=True,
        case_sensitive=True,
        env_ignore_empty=True,  # `AUTO_REPAIR=` means "not set", as compose files write it
        extra="forbid",  # a misspelt override in code is an error, not ignored
        use_attribute_docstrings=True,
    )


class ProcessSettings(_Group):
    APP_ENV: Literal["development", "test", "production"] = Field(
        "development", validation_alias=AliasChoices("APP_ENV", "NODE_ENV")
    )
    """production refuses weak secrets and test-only settings"""
    PORT: int = Field(3000, ge=1, le=65535)
    """API port"""
    PUBLIC_BASE_URL: str = ""
    """used in `dashboardUrl` and as the OAuth issuer (empty: `http://127.0.0.1:$PORT`)"""
    API_WORKERS: int = Field(2, ge=1, le=64)
    """gunicorn worker processes (`scripts/stack.sh`)"""
    WORKER_CONCURRENCY: int = Field(8, ge=1, le=256)
    """Celery worker processes (`scripts/stack.sh`)"""
    MAX_ACTIVE_JOBS: int = Field(0, ge=0, le=10000)
    """jobs running at once; later ones wait their turn in submission order, their
    `MAX_PROVISIONING_TIME` starting only when they start (0: twice `WORKER_CONCURRENCY`)"""
    FLOWER_PORT: int = Field(5555, ge=1, le=65535)
    """Flower port (`scripts/stack.sh`)"""
    RUN_DIR: str = str(PROJECT_ROOT / ".run")
    """pidfiles, logs, agent state"""


class StateSettings(_Group):
    DATABASE_URL: str = ""
    """state database (empty: built from `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`,
    `DB_PASSWORD`)"""
    DB_HOST: str = "127.0.0.1"
    """state database host, when `DATABASE_URL` is unset"""
    DB_PORT: int = Field(5432, ge=1, le=65535)
    """state database port, when `DATABASE_URL` is unset"""
    DB_NAME: str = "provisioning"
    """state database name, when `DATABASE_URL` is unset"""
    DB_USER: str = "postgres"
    """state database user, when `DATABASE_URL` is unset"""
    DB_PASSWORD: str = ""
    """state database password, when `DATABASE_URL` is unset"""
    TENANT_DATABASE_URL: str = ""
    """where tenant schemas go (empty: the state server, database `<name>_tenants`)"""
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    """broker, result backend, rate limits"""
    JWT_SECRET: str = ""
    """signs API tokens; 32+ characters, required outside development (`make env` writes one)"""
    SECRETS_KEY: str = ""
    """Fernet key encrypting stored secrets, or several comma-separated, newest first
    (rotation: see "Secrets and keys"); required (`make env` writes one)"""


class TimingSettings(_Group):
    MAX_PROVISIONING_TIME: JobDeadline = 300.0
    """job deadline, counted from the job's start (see `MAX_ACTIVE_JOBS`): `300s`, `5m`;
    a bare number is milliseconds, as in the original service (`300000`)"""
    STEP_TIMEOUT: StepTimeout = 60.0
    """bound on each step: `60s`, `1m`; a bare number is milliseconds, as in the original
    service (`60000`)"""
    STALL_TIMEOUT: Seconds = 90.0
    """a job this quiet, with no worker holding it, is picked up by the sweeper"""
    HEARTBEAT_INTERVAL: Seconds = 5.0
    """how often a running step marks its job alive"""
    SWEEP_INTERVAL: Seconds = 15.0
    """how often beat runs the sweeper"""
    RETRY_MAX: int = Field(3, ge=0, le=20)
    """retries of a transient step error"""
    RETRY_BASE: Seconds = 1.0
    """first retry delay"""
    RETRY_FACTOR: float = Field(2.0, ge=1, le=10, allow_inf_nan=False)
    """backoff multiplier"""
    RETRY_JITTER: float = Field(0.5, ge=0, le=1, allow_inf_nan=False)
    """random fraction added to each retry delay"""
    VALIDATION_RETRY_MAX: int = Field(6, ge=0, le=50)
    """attempts of the final health-check step"""


class ApiSettings(_Group):
    PROVISION_RATE_LIMIT: RateLimit = "10 per hour"
    """provisioning requests per authenticated caller, counted after auth (flask-limiter
    notation)"""
    API_RATE_LIMIT: RateLimit = "100 per minute"
    """other requests per user; status is unlimited"""
    REGIONS: CommaList = ("us-east", "us-west", "eu-west", "eu-central", "ap-southeast")
    """allowed `region` values, comma-separated"""
    CORS_ORIGINS: CommaList = ()
    """browser origins allowed to call the API, comma-separated; empty keeps CORS closed"""
    DEPROVISION_REQUIRE_CONFIRM: bool = False
    """require `confirm=<departmentId>` to deprovision"""


class SecuritySettings(_Group):
    MAX_CONTENT_LENGTH: int = Field(1024 * 1024, ge=1024, le=1024**3)
    """largest request body accepted, in bytes; a larger one gets 413 before it is read"""
    AUTH_FAILURE_RATE_LIMIT: RateLimit = "120 per minute"
    """requests failing authentication, per client address; beyond it they get 429"""
    OAUTH_RATE_LIMIT: RateLimit = "60 per minute"
    """failed `/oauth/*` requests per client address (agents on one host share one)"""
    OAUTH_CLIENT_RATE_LIMIT: RateLimit = "30 per minute"
    """`/oauth/*` requests per OAuth client id, whatever addresses they come from"""
    OAUTH_PURGE_INTERVAL: SecondsOrOff = 3600.0
    """how often beat deletes expired OAuth token records; 0 turns it off"""
    TRUSTED_PROXIES: int = Field(0, ge=0, le=10)
    """reverse proxies in front of the API (Railway's edge: 1); their X-Forwarded-For,
    -Proto and -Host name the client. 0: those headers are ignored, so a client cannot
    choose the address its rate limits are counted under"""
    JWT_MAX_TTL_DAYS: float = Field(30.0, gt=0, le=365)
    """longest lifetime an API token may have; longer ones are refused when minted and
    when presented"""


class ComponentSettings(_Group):
    CONTAINER_RUNTIME: Literal["", "docker", "local", "railway"] = ""
    """`docker` containers, `local` agent processes, or `railway` (then the
    `RAILWAY_*` settings); empty: `docker` when an engine answers, else `local`"""
    DOCKER_HOST: str = ""
    """engine for `docker` (empty: the one `make up` starts under
    `~/.cache/provisioning-orchestrator/docker`, else `/var/run/docker.sock`)"""
    AGENT_IMAGE: str = ""
    """agent image for `docker` (empty: the tag `python -m app.providers.agent_image`
    builds from the sources)"""
    CADDY_ADMIN_URL: str = ""
    """Caddy's admin API: `unix:///path/admin.sock` or an http URL (empty: the socket
    `scripts/caddy.sh` opens at `$RUN_DIR/caddy-home/admin.sock`, reachable only by
    the orchestrator's OS user)"""
    GATEWAY_PUBLIC_URL: str = "http://127.0.0.1:8080"
    """the gateway as clients reach it"""
    CADDY_ADMIN_PORT: int | None = Field(None, ge=1, le=65535)
    """deprecated: serve the admin API on this loopback TCP port instead of the socket
    (any local user, department agents included, could then rewrite the gateway)"""
    GATEWAY_PORT: int = Field(8080, ge=1, le=65535)
    """gateway port of the local Caddy (`scripts/caddy.sh`)"""
    N8N_URL: str = Field(
        "http://127.0.0.1:5678", validation_alias=AliasChoices("N8N_URL", "N8N_BASE_URL")
    )
    """n8n base URL"""
    N8N_API_KEY: str = ""
    """n8n API key (empty: the one `scripts/n8n.sh setup` wrote to `$RUN_DIR/n8n-api-key`)"""
    N8N_PORT: int = Field(5678, ge=1, le=65535)
    """port of the local n8n (`scripts/n8n.sh`)"""
    OAUTH_ISSUER: str = ""
    """OAuth issuer (empty: `PUBLIC_BASE_URL`)"""
    OAUTH_TOKEN_TTL: int = Field(3600, ge=60, le=86400)
    """OAuth access token lifetime, seconds"""
    RAILWAY_API_URL: str = "https://backboard.railway.com/graphql/v2"
    """Railway's GraphQL API"""
    RAILWAY_API_TOKEN: str = ""
    """Railway API token"""
    RAILWAY_PROJECT_ID: str = ""
    """Railway project the agents are deployed in"""
    RAILWAY_ENVIRONMENT_ID: str = ""
    """Railway environment the agents are deployed in"""
    RAILWAY_IMAGE: str = ""
    """agent image deployed on Railway; a new one is drift that a repair rolls out"""
    RAILWAY_TOKEN_KIND: Literal["account", "workspace", "project"] = "account"  # noqa: S105
    """`account`, `workspace` (`Authorization: Bearer`) or `project` (`Project-Access-Token`)"""
    RAILWAY_POLL_INTERVAL: Seconds = 3.0
    """first wait between deployment polls; it doubles up to `RAILWAY_POLL_MAX_INTERVAL`"""
    RAILWAY_POLL_MAX_INTERVAL: Seconds = 15.0
    """longest wait between deployment polls"""
    RAILWAY_DEPLOY_TIMEOUT: Seconds = 45.0
    """how long one step waits for a deployment (below `STEP_TIMEOUT`; a retry waits on)"""
    RAILWAY_REQUEST_BUDGET: int = Field(30, ge=10, le=1000)
    """the most requests one driver call may send to Railway"""
    RAILWAY_MAX_RETRY_WAIT: float = Field(30.0, ge=0, le=600, allow_inf_nan=False)
    """a 429's `Retry-After` up to this many seconds is waited out; longer ones fail the try"""


class OperationsSettings(_Group):
    DRIFT_CHECK_INTERVAL: SecondsOrOff = 300.0
    """between fleet health sweeps; 0 turns them off"""
    AUTO_REPAIR: bool = False
    """start a repair job for each drifted department"""
    RETENTION_INTERVAL: SecondsOrOff = 3600.0
    """between runs deleting conversation data older than `dataRetention`; 0: off"""
    LOG_FORMAT: Literal["", "json", "text"] = ""
    """`json` or `text` (empty: text in development, json elsewhere)"""
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """log level"""
    METRICS_TOKEN: str = ""
    """bearer token for `/metrics` (empty: loopback clients only)"""
    FAULT_INJECTION_ENABLED: bool = False
    """test-only; refused in production"""
    FINAL_COPY_RETENTION_DAYS: float = Field(30.0, gt=0, le=3650)
    """days a deprovision's final copy (`finalCopy=true`) is kept, restorable"""
    FINAL_COPY_PURGE_INTERVAL: SecondsOrOff = 3600.0
    """between beat's purges of expired final copies; 0 turns them off"""
    CREDENTIAL_ROTATION_DAYS: float = Field(0.0, ge=0, le=3650)
    """rotate each ACTIVE department's database password and OAuth secret this many days
    after the last rotation (or creation), checked hourly by beat; 0 turns it off"""


class WebhookSettings(_Group):
    WEBHOOK_URLS: CommaList = ()
    """receivers of every job state change, comma-separated"""
    WEBHOOK_SECRET: str = ""
    """Standard Webhooks signing secret(s), `whsec_<base64>`, space-separated while
    rotating (empty: derived from `SECRETS_KEY`; required in production with
    `WEBHOOK_URLS`)"""
    WEBHOOK_ALLOW_PRIVATE: bool = False
    """allow loopback and private receiver addresses"""
    WEBHOOK_TIMEOUT: Seconds = 10.0
    """per delivery attempt"""
    WEBHOOK_MAX_ATTEMPTS: int = Field(8, ge=1, le=100)
    """attempts per delivery"""
    WEBHOOK_RETRY_BASE: Seconds = 5.0
    """first redelivery delay"""
