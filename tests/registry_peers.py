"""Real peers for the image-transport tests: Debian's docker-registry, a token server,
buildah and podman with storage of their own.

Each registry is a `docker-registry serve` process on a free loopback port with its
storage in a temp dir, stopped (by its pid) and removed after its test; buildah and
podman get ``--root``/``--runroot``/``--tmpdir`` under a temp dir, removed after,
so nothing of theirs is left on the host. A tool that is missing skips the test
with the package to install (a failure in CI, where SANDBOX_MUST_WORK=1).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is missing: apt-get install {package} (scripts/setup.sh does)")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(port: int, host: str = "127.0.0.1", proc: subprocess.Popen | None = None,
                   timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the peer on port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port} after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Registry:
    """A running docker-registry: ``host`` is ``127.0.0.1:PORT``; ``log`` its request log."""

    host: str
    root: Path
    log: Path

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"

    def requests(self, needle: str) -> int:
        """How many logged requests contain ``needle`` (e.g. ``GET /v2/app/blobs/``)."""
        return sum(1 for line in self.log.read_text().splitlines()
                   if "response completed" in line and needle in _request_line(line))

    def blob_file(self, digest: str) -> Path:
        hexa = digest.split(":")[1]
        return self.root / "data/docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"


def _request_line(line: str) -> str:
    try:
        doc = json.loads(line)
        return f"{doc.get('http.request.method')} {doc.get('http.request.uri')}"
    except ValueError:
        return line


@contextlib.contextmanager
def docker_registry(auth: dict | None = None) -> Iterator[Registry]:
    """A docker-registry on a free loopback port; ``auth``: its config's auth section."""
    need("docker-registry", "docker-registry")
    root = Path(tempfile.mkdtemp(prefix="pytest-sandbox-registry-"))
    port = free_port()
    config = {"version": 0.1, "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": True}},
              "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
              "http": {"addr": f"127.0.0.1:{port}", "secret": "test-secret"}}
    if auth:
        config["auth"] = auth
    (root / "config.yml").write_text(json.dumps(config))  # YAML reads JSON
    log = root / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc=proc)
        yield Registry(f"127.0.0.1:{port}", root, log)
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def htpasswd(path: Path, user: str, password: str) -> None:
    need("htpasswd", "apache2-utils")
    subprocess.run(["htpasswd", "-Bbc", str(path), user, password], check=True, capture_output=True)


@dataclass
class TokenServer:
    url: str
    service: str
    issuer: str
    cert: Path
    log: Path

    def issued(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@contextlib.contextmanager
def token_server(users: dict[str, tuple[str, str]]) -> Iterator[TokenServer]:
    """tests/token_server.py on a free port: ``users`` maps name -> (password, actions granted)."""
    need("openssl", "openssl")
    root = Path(tempfile.mkdtemp(prefix="pytest-sandbox-token-"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(root / "key.pem"),
                    "-out", str(root / "cert.pem"), "-days", "1", "-subj", "/CN=sandbox-test-token"],
                   check=True, capture_output=True)
    port = free_port()
    (root / "users.json").write_text(json.dumps(users))
    proc = subprocess.Popen([sys.executable, str(HERE / "token_server.py"), str(port), str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc=proc)
        yield TokenServer(f"http://127.0.0.1:{port}/token", "sandbox-test-registry", "sandbox-test-issuer",
                          root / "cert.pem", root / "issued.log")
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def token_auth(server: TokenServer) -> dict:
    return {"token": {"realm": server.url, "service": server.service, "issuer": server.issuer,
                      "rootcertbundle": str(server.cert)}}


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- buildah and podman, with storage of their own ---------------------------------

@dataclass
class Containers:
    """Storage flags for buildah, podman and skopeo's containers-storage: under one temp dir."""

    root: Path

    @property
    def flags(self) -> list[str]:
        return ["--root", str(self.root / "root"), "--runroot", str(self.root / "run")]

    @property
    def storage(self) -> str:
        """skopeo's transport prefix for this storage."""
        return f"containers-storage:[overlay@{self.root / 'root'}+{self.root / 'run'}]"

    def buildah(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        need("buildah", "buildah")
        return subprocess.run(["buildah", *self.flags, *args], capture_output=True, text=True, check=check,
                              env=self.env, timeout=300)

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        need("podman", "podman")
        return subprocess.run(["podman", *self.flags, "--tmpdir", str(self.root / "tmp"),
                               "--cgroup-manager", "cgroupfs", "--events-backend", "none", *args],
                              capture_output=True, text=True, check=check, env=self.env, timeout=300)

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, TMPDIR=str(self.root / "tmp"), XDG_RUNTIME_DIR=str(self.root / "xdg"))

    def podman_run(self, image: str, *command: str) -> subprocess.CompletedProcess:
        """`podman run` as this host allows: runc (crun refuses a hybrid cgroup host), lowered rlimits."""
        return self.podman("--runtime", "runc", "run", "--rm", "--network", "none",
                           "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image, *command)


@contextlib.contextmanager
def containers() -> Iterator[Containers]:
    root = Path(tempfile.mkdtemp(prefix="pytest-sandbox-containers-"))
    for sub in ("tmp", "xdg"):
        (root / sub).mkdir(mode=0o700)
    tools = Containers(root)
    try:
        yield tools
    finally:
        if shutil.which("buildah"):
            tools.buildah("rm", "--all", check=False)
        if shutil.which("podman") and (root / "root" / "libpod").exists():  # podman was used
            tools.podman("rm", "--all", "--force", check=False)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def _unmount_under(root: Path) -> None:
    """Unmount whatever the tools left mounted under ``root`` (their overlay storage), deepest first."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(str(root) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def busybox_rootfs(dest: Path) -> Path:
    """A tiny rootfs: the host's static busybox as /bin/busybox and /bin/sh."""
    from sandbox.images.builtin import find_static_busybox

    (dest / "bin").mkdir(parents=True)
    shutil.copy2(find_static_busybox(), dest / "bin/busybox")
    os.symlink("busybox", dest / "bin/sh")
    for tool in ("echo", "cat", "ls", "stat", "find", "sort", "md5sum"):
        os.symlink("busybox", dest / "bin" / tool)
    (dest / "etc").mkdir()
    (dest / "etc/os-release").write_text("NAME=built-by-buildah\n")
    return dest
