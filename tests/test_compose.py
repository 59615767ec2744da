"""compose.yaml, run: the image built from this checkout, Redis, the daemon and two workers.

With podman and podman-compose (no Docker engine on the test hosts), as root, without the
network: the image builds over localhost/sandbox-base:bookworm, which deploy/build-base.sh
made from a debootstrapped Debian (scripts/setup.sh --tests does it). Jobs submitted from
this host through Redis's published port run in sandboxes inside the worker containers;
the daemon serves them with a token made as README says; queued jobs and records survive
a restart of Redis's container (its append-only file on a volume). Each run has its own
project name and image tag, and `down -v` removes its containers, network and volumes.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobs import connect, load_job_file, store, submit, wait

from .jobs_support import ROOT, free_port, job_file, sandbox_cmd

pytestmark = pytest.mark.root

BASE = "localhost/sandbox-base:bookworm"
SLEEPY = """
    name = "sleepy"
    image = "busybox"
    [matrix]
    N = ["1", "2", "3", "4"]
    [[steps]]
    name = "s"
    run = "sleep 1; echo job $N"
"""
ONE = """
    name = "one"
    image = "busybox"
    [[steps]]
    name = "s"
    run = "echo after the restart"
"""


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {proc.returncode}: {proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """This checkout's image, built offline over the base; removed afterwards."""
    for tool in ("podman", "podman-compose"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup.sh installs both)")
    if podman("image", "exists", BASE, check=False).returncode != 0:
        pytest.skip(f"no {BASE}: run deploy/build-base.sh podman (scripts/setup.sh --tests does)")
    tag = f"localhost/sandbox-test:{secrets.token_hex(4)}"
    podman("build", "-q", "--network", "none", "-f", "Containerfile", "-t", tag, ROOT, timeout=600)
    try:
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


def rlimits_conf(path: str) -> str:
    """A containers.conf giving containers rlimits this host lets runc set.

    Podman as root asks for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 by default; only a
    process with CAP_SYS_RESOURCE may raise a hard limit, and the test machines lack it
    (podman 4.3 also lowers its own RLIMIT_NPROC below this host's, so the host's hard
    limit is refused too). The same lowering as tests/registry_peers.py's `--ulimit`s, as
    the compose file's users on ordinary hosts never need it.
    """
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with open(path, "w") as f:
        f.write(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n')
    return path


class Project:
    """One `podman-compose -p NAME` of compose.yaml, on free ports of this host's loopback."""

    def __init__(self, image: str, containers_conf: str) -> None:
        self.name = f"sbxt{secrets.token_hex(4)}"
        self.redis_port, self.daemon_port = free_port(), free_port()
        self.env = {**os.environ, "SANDBOX_IMAGE": image, "CONTAINERS_CONF": containers_conf,
                    "REDIS_PUBLISH": f"127.0.0.1:{self.redis_port}",
                    "SANDBOX_DAEMON_PUBLISH": f"127.0.0.1:{self.daemon_port}"}
        self.url = f"redis://127.0.0.1:{self.redis_port}/0"

    def compose(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(["podman-compose", "-p", self.name, "-f", os.path.join(ROOT, "compose.yaml"),
                               *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"podman-compose {' '.join(args)}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        return proc.stdout

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.name}_{service}_{index}"

    def owned(self, kind: str) -> list[str]:
        """This project's containers, volumes or networks that podman still has."""
        label = f"io.podman.compose.project={self.name}"
        args = {"ps": ["ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"],
                "volume": ["volume", "ls", "--format", "{{.Name}}"],
                "network": ["network", "ls", "--format", "{{.Name}}"]}[kind]
        names = podman(*args).stdout.split()
        return [n for n in names if kind == "ps" or n.startswith(self.name)]


@pytest.fixture
def project(image: str, tmp_path) -> Iterator[Project]:
    up = Project(image, rlimits_conf(str(tmp_path / "containers.conf")))
    try:
        up.compose("up", "-d")
        yield up
    finally:
        up.compose("down", "-v", "--timeout", "30")
        for volume in up.owned("volume"):  # the workers' anonymous volumes carry no project name
            podman("volume", "rm", "--force", volume, check=False)
    assert up.owned("ps") == [] and up.owned("volume") == [] and up.owned("network") == []


def redis_up(url: str, timeout: float = 120) -> Any:
    """A client once Redis's container answers (connect() refuses a first contact that fails)."""
    from jobs.errors import QueueUnavailable

    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(url)
        except QueueUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def workers_listening(conn: Any, count: int, timeout: float = 120) -> set[str]:
    """The names of the RQ workers registered in Redis, once there are ``count``."""
    from rq import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = {w.name for w in Worker.all(connection=conn)}
        if len(names) >= count:
            return names
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} workers registered: {names}")


def test_compose_up_runs_jobs_in_the_worker_containers(project: Project, tmp_path):
    """Two replicas take jobs; the daemon takes them with a token; a Redis restart keeps them."""
    conn = redis_up(project.url)
    workers = workers_listening(conn, 2)
    ids = [submit(conn, spec) for spec in load_job_file(job_file(tmp_path, SLEEPY))]
    results = [wait(conn, job_id, timeout=180) for job_id in ids]
    assert [r.status for r in results] == ["passed"] * 4, [(r.status, r.error) for r in results]
    assert {r.worker for r in results} == workers  # both replicas ran jobs
    token = subprocess.run(["podman", "exec", project.container("daemon"), "sandbox", "daemon", "token",
                            "create", "--name", "test", "--scope", "jobs"],
                           capture_output=True, text=True, timeout=120)
    assert token.returncode == 0, token.stderr
    through_daemon = {"SANDBOX_HOST": f"tcp://127.0.0.1:{project.daemon_port}",
                      "SANDBOX_TOKEN": token.stdout.split()[-1]}
    submitted = sandbox_cmd("submit", "--quiet", job_file(tmp_path, ONE), env=through_daemon)
    assert submitted.returncode == 0, submitted.stderr
    by_daemon = submitted.stdout.strip()
    assert wait(conn, by_daemon, timeout=180).status == "passed"
    listed = sandbox_cmd("jobs", "list", "--json", env=through_daemon)  # the token's own jobs
    assert listed.returncode == 0, listed.stderr
    assert [(job["id"], job["status"]) for job in json.loads(listed.stdout)] == [(by_daemon, "passed")]

    project.compose("stop", "worker")  # a job waits in the queue while Redis restarts
    queued = submit(conn, load_job_file(job_file(tmp_path, ONE))[0])
    podman("restart", project.container("redis"))
    conn = redis_up(project.url)
    assert store.status_of(conn, queued) == "queued"
    assert all(store.read(conn, job_id)["status"] == "passed" for job_id in ids)  # the AOF kept them
    project.compose("start", "worker")
    assert wait(conn, queued, timeout=180).status == "passed"
