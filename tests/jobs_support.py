"""Helpers for the job tests: job files on disk, a private Redis, worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def job_file(tmp_path, text: str, files: dict[str, str] | None = None) -> str:
    """Write a job file (dedented) and its workspace files; the file's path."""
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    for rel, content in (files or {}).items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(textwrap.dedent(content))
    path = tmp_path / "job.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def env() -> dict[str, str]:
    """This process's environment with the worktree first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}


def sandbox_cmd(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], env=env(),
                          capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


@pytest.fixture(scope="module")
def redis_url():
    """.ci/run's Redis (SANDBOX_TEST_REDIS_URL), or a throwaway one for the module."""
    url = os.environ.get("SANDBOX_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer().start()
    yield server.url
    server.stop()


@pytest.fixture
def queue():
    """A queue name of its own for each test, so tests never take each other's jobs."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def workers(redis_url, queue):
    """A pool of worker processes on the test's queue, stopped at the end."""
    pool = Workers(redis_url, queue)
    yield pool
    pool.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throwaway redis-server on a free loopback port; ``aof``: with its append-only file,
    so that ``restart()`` keeps every acknowledged write."""

    def __init__(self, port: int | None = None, password: str | None = None, *,
                 aof: bool = False) -> None:
        self.port = port or free_port()
        self.password = password
        self.aof = aof
        self.dir = tempfile.mkdtemp(prefix="sandbox-redis-")
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.aof else "no", "--dir", self.dir, *auth],
            stdout=subprocess.DEVNULL)
        import redis

        for _ in range(200):
            try:
                redis.Redis(port=self.port, password=self.password).ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop it as `docker compose restart` and systemd do (SIGTERM), start it again."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Workers:
    """`sandbox worker` processes started by a test, all stopped at its end."""

    def __init__(self, url: str, queue: str) -> None:
        self.url, self.queue = url, queue
        self.procs: list[subprocess.Popen] = []

    def start(self, *extra: str, url: str | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "worker", "--redis", url or self.url,
             "--queue", self.queue, *extra],
            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
