"""A second stack on the suite's databases and components, with a redis-server
of its own (so its messages reach only its own worker) and settings of its own:
for tests that restart Redis or need every process to share a setting the
session's stack does not have."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support import stack


@dataclass
class PrivateStack:
    """API, worker and beat on a redis-server of our own, which we may restart."""

    redis_server: stack.Service
    api: stack.Service
    worker: stack.Service
    beat: stack.Service
    redis_url: str
    api_url: str

    def restart_redis(self, down_for: float) -> None:
        self.redis_server.stop()  # --save "": everything in it is gone, like a crash
        time.sleep(down_for)
        self.redis_server.start()
        wait_redis(self.redis_url)


def wait_redis(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.RedisError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer")


def _redis_service(port: int, log_dir: Path, env: dict[str, str]) -> stack.Service:
    command = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
    ]  # fmt: skip
    return stack.Service("redis-private", command, env, log_dir)


@contextmanager
def private_stack(
    test_env: dict[str, str],
    log_dir: Path,
    redis_port: int,
    api_port: int,
    settings: dict[str, str] | None = None,
) -> Iterator[PrivateStack]:
    """Same databases, components and RUN_DIR as the session's stack (its agents
    are cleaned by the session); ``settings`` apply to all of its processes."""
    log_dir.mkdir(exist_ok=True)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {**test_env, **(settings or {}), "REDIS_URL": redis_url}
    private = PrivateStack(
        redis_server=_redis_service(redis_port, log_dir, env).start(),
        api=stack.api_server(env, log_dir, api_port, name="api-private"),
        worker=stack.celery_worker(env, log_dir, "worker-private", concurrency=2),
        beat=stack.celery_beat(env, log_dir),
        redis_url=redis_url,
        api_url=f"http://127.0.0.1:{api_port}",
    )
    wait_redis(redis_url)
    try:
        for service in (private.api, private.worker, private.beat):
            service.start()
        stack.wait_http(f"{private.api_url}/openapi.json")
        yield private
    finally:
        for service in (private.beat, private.worker, private.api, private.redis_server):
            service.stop()
