"""Starts and stops the real processes the end-to-end tests drive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


class Service:
    """One background process in its own session, killable as a group."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        # Logs may quote secrets: readable by their owner only, as scripts/stack.sh makes them.
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def kill9(self) -> None:
        """SIGKILL the whole process group: no cleanup, no errbacks, like a crash."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill9()

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def with_metrics_dir(env: dict[str, str]) -> dict[str, str]:
    """Prometheus multiprocess mode, as scripts/stack.sh sets it up: the
    directory is in the environment before the process forks its workers, and
    shared by every API and worker process of one stack (RUN_DIR is per session)."""
    directory = Path(env["RUN_DIR"]) / "prometheus"
    directory.mkdir(parents=True, exist_ok=True)
    return {**env, "PROMETHEUS_MULTIPROC_DIR": str(directory)}


def api_server(env: dict[str, str], log_dir: Path, port: int, name: str = "api") -> Service:
    return Service(
        name,
        [
            str(VENV_BIN / "gunicorn"),
            "wsgi:app",
            "-c",
            str(ROOT / "config" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--timeout",
            "60",
        ],
        with_metrics_dir(env),
        log_dir,
    )


def celery_worker(env: dict[str, str], log_dir: Path, name: str, concurrency: int = 6) -> Service:
    return Service(
        name,
        [
            str(VENV_BIN / "celery"),
            "-A",
            "celery_worker",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        with_metrics_dir(env),
        log_dir,
    )


def celery_beat(env: dict[str, str], log_dir: Path) -> Service:
    return Service(
        "beat",
        [
            str(VENV_BIN / "celery"),
            "-A",
            "celery_worker",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(log_dir / "beat-schedule"),
        ],
        env,
        log_dir,
    )


def run_script(args: list[str], env: dict[str, str], timeout: float = 900) -> None:
    result = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
