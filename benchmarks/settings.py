"""Where the benchmark stack lives: its own databases, Redis database and ports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class BenchSettings:
    state_db: str = "po_bench"
    # Test slots use Redis database 14 - TEST_SLOT (0..14) and the dev stack 0: 15 is free.
    redis_db: int = field(default_factory=lambda: _env_int("BENCH_REDIS_DB", 15))
    api_port: int = 24000
    gateway_port: int = 24080
    prefix: str = "zb"  # every benchmark department id starts with it
    worker_concurrency: int = field(default_factory=lambda: _env_int("BENCH_WORKER_CONCURRENCY", 8))
    api_workers: int = 2
    run_dir: Path = field(default_factory=lambda: ROOT / ".run" / "bench")

    @property
    def tenant_db(self) -> str:
        return f"{self.state_db}_tenants"

    @property
    def state_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.state_db}"

    @property
    def tenant_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.tenant_db}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:6379/{self.redis_db}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def caddy_admin_url(self) -> str:
        # The socket scripts/caddy.sh opens in the RUN_DIR stack.py gives it.
        return f"unix://{self.run_dir}/caddy/caddy-home/admin.sock"
