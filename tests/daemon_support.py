"""Helpers for the daemon's tests: a `sandbox daemon` process of the test's own, and clients.

The daemon listens on a private unix socket (under the test's temp dir) and,
when asked, on a free loopback port with tokens of the test's making. It
shares the suite's state roots (so the leak check sees what it leaves) and
is stopped with SIGTERM at the end.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from .jobs_support import env, free_port


class Daemon:
    """One `sandbox daemon` process of a test: its socket, its TCP port, its tokens."""

    def __init__(self, tmp_path, *, redis: str | None = None, tcp: bool = False,
                 extra: tuple[str, ...] = ()) -> None:
        self.socket = str(tmp_path / "d.sock")
        self.port = free_port() if tcp else None
        self.redis = redis
        self.extra = extra
        self.env = env()
        self.env.pop("SANDBOX_REDIS_URL", None)
        self.env.pop("SANDBOX_HOST", None)
        self.proc: subprocess.Popen | None = None
        self.log = tmp_path / "daemon.log"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Daemon":
        args = [sys.executable, "-m", "sandbox", "daemon", "--socket", self.socket, *self.extra]
        if self.port:
            args += ["--listen", f"tcp://127.0.0.1:{self.port}"]
        if self.redis:
            args += ["--redis", self.redis]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.log.read_text()}")
            try:
                if self.unix().get("/v1/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the daemon did not start: {self.log.read_text()}")

    def unix(self, **kw) -> httpx.Client:
        """An httpx client on the unix socket (the host's administrator, no token)."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=self.socket),
                            base_url="http://daemon", timeout=kw.pop("timeout", 60), **kw)

    def tcp(self, token: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 60), **kw)

    def token(self, name: str, *scopes: str) -> str:
        args = [sys.executable, "-m", "sandbox", "daemon", "token", "create", "--name", name]
        for scope in scopes:
            args += ["--scope", scope]
        out = subprocess.run(args, env=self.env, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 120,
            token: str | None = None) -> subprocess.CompletedProcess:
        """The CLI as a client of this daemon (SANDBOX_HOST)."""
        environ = dict(self.env, SANDBOX_HOST=self.host)
        if token:
            environ.update(SANDBOX_HOST=f"tcp://127.0.0.1:{self.port}", SANDBOX_TOKEN=token)
        return subprocess.run([sys.executable, "-m", "sandbox", *args], env=environ,
                              capture_output=True, input=input, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def local_cli(*args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The embedded CLI (no daemon)."""
    environ = env()
    environ.pop("SANDBOX_HOST", None)
    environ.pop("SANDBOX_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "sandbox", *args], env=environ,
                          capture_output=True, input=input, timeout=timeout)


@pytest.fixture
def daemon(tmp_path, needs_root):
    """A daemon on a private socket, jobs in-process; stopped (SIGTERM) at the end."""
    d = Daemon(tmp_path).start()
    yield d
    assert d.stop() == 0, d.log.read_text()


@pytest.fixture
def tcp_daemon(tmp_path, needs_root, monkeypatch):
    """A daemon on a private socket and a loopback port, its tokens in the test's state dir."""
    state = tmp_path / "state"
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(state))
    d = Daemon(tmp_path, tcp=True).start()
    yield d
    assert d.stop() == 0, d.log.read_text()


def wait_status(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """Poll a job until it is final; its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = client.get(f"/v1/jobs/{job_id}").json()
        if fields["status"] not in ("queued", "running"):
            return fields
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end within {timeout}s")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

