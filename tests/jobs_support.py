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
    """`sandbox ARGS...`; ``env``: variables added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "sandbox", *args], env={**env(), **kw.pop("env", {})},
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


class Outside:
    """A stand-in for the internet: an HTTP server in a network namespace of its own,
    reached from this one through a veth pair routed like a host's uplink.

    Sandboxes reach it only through the host's forwarding (their egress), as
    they would reach a package registry; ``requests`` are the paths it served.
    """

    GATEWAY, ADDRESS, PREFIX = "10.251.7.1", "10.251.7.2", 24
    LINK, PEER = "tpl-out0", "tpl-out1"

    # http.server's own main looks its address up in DNS (getfqdn) before it listens,
    # and this namespace's resolver is unreachable: serve without naming the address.
    SERVER = ("import functools, http.server as h, socketserver, sys; "
              "S = type(\"S\", (h.ThreadingHTTPServer,), "
              "{\"server_bind\": lambda s: socketserver.TCPServer.server_bind(s)}); "
              "H = functools.partial(h.SimpleHTTPRequestHandler, directory=sys.argv[3]); "
              "S((sys.argv[1], int(sys.argv[2])), H).serve_forever()")

    def __init__(self, directory: str, port: int = 8765) -> None:
        self.directory, self.port = directory, port
        self.url = f"http://{self.ADDRESS}:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix="pytest-sandbox-outside-", delete=False)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Outside":
        script = (f"while ! ip link show {self.PEER} >/dev/null 2>&1; do sleep 0.02; done; "
                  f"ip link set lo up; ip addr add {self.ADDRESS}/{self.PREFIX} dev {self.PEER}; "
                  f"ip link set {self.PEER} up; ip route add default via {self.GATEWAY}; "
                  f"exec {sys.executable} -c '{self.SERVER}' {self.ADDRESS} {self.port} {self.directory}")
        self.proc = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", script],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        ours = os.readlink("/proc/self/ns/net")
        while os.readlink(f"/proc/{self.proc.pid}/ns/net") == ours:  # until unshare(2) ran
            time.sleep(0.005)
        for cmd in (f"link add {self.LINK} type veth peer name {self.PEER} netns {self.proc.pid}",
                    f"addr add {self.GATEWAY}/{self.PREFIX} dev {self.LINK}",
                    f"link set {self.LINK} up"):
            subprocess.run(["ip", *cmd.split()], check=True)
        for _ in range(250):
            if self.proc.poll() is not None:  # its links went with it: nothing here to wait for
                break
            try:
                socket.create_connection((self.ADDRESS, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        with open(self.log.name) as f:
            said = f.read()[-2000:]
        self.stop()
        raise RuntimeError(f"the stand-in for the internet did not start: {said}")

    @property
    def requests(self) -> list[str]:
        """The paths of the GET requests served so far."""
        with open(self.log.name) as f:
            return [line.split('"GET ')[1].split()[0] for line in f if '"GET ' in line]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        for _ in range(250):  # the peer goes with the namespace, and this end with it
            if not os.path.exists(f"/sys/class/net/{self.LINK}"):
                break
            time.sleep(0.02)
        self.log.close()
        os.unlink(self.log.name)


def redis_wheel(directory) -> str:
    """A wheel of the installed redis client, made from its files (no download); its name."""
    import importlib.metadata
    import pathlib
    import zipfile

    import redis

    dist = importlib.metadata.distribution("redis")
    package = pathlib.Path(redis.__file__).parent
    site = package.parent
    info = site / f"redis-{dist.version}.dist-info"
    name = f"redis-{dist.version}-py3-none-any.whl"
    files = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    files += [p for p in info.rglob("*") if p.is_file() and p.name not in ("RECORD", "INSTALLER")]
    with zipfile.ZipFile(pathlib.Path(directory) / name, "w") as wheel:
        for path in files:
            wheel.write(path, str(path.relative_to(site)))
        arcnames = [str(p.relative_to(site)) for p in files] + [f"{info.name}/RECORD"]
        wheel.writestr(f"{info.name}/RECORD", "".join(f"{n},,\n" for n in arcnames))
    return name
