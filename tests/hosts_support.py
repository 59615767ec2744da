"""Machines on one LAN, simulated: network namespaces as hosts, for the many-hosts tests.

The first host holds the switch (a bridge) and Redis; every other host is
joined to it by a veth pair, on a private subnet. A host's link is cut by
taking its switch port down (its end loses the carrier: packets vanish,
nothing is refused, as when a cable is pulled) and restored by bringing it up.

Each host's processes run in its network namespace (``nsenter --net``) with
their own state roots, so a worker sees only its host's sandboxes. This test
process talks to Redis from the first host: its client's sockets are made
inside that namespace (setns(2) on the calling thread only, for the moment
of the connect).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from .jobs_support import env

SUBNET = "10.231.77"


class Lan:
    """``count`` hosts: named network namespaces, the first one the switch and Redis's."""

    def __init__(self, root: Path, count: int = 3) -> None:
        tag = secrets.token_hex(3)
        self.root = root
        self.hosts = [f"sbxt-host{i}-{tag}" for i in range(count)]
        self.made: list[str] = []

    def address(self, index: int) -> str:
        return f"{SUBNET}.{index + 1}"

    def start(self) -> "Lan":
        first = self.hosts[0]
        for host in self.hosts:
            _ip("netns", "add", host)
            self.made.append(host)
            _ip("-n", host, "link", "set", "lo", "up")
        _ip("-n", first, "link", "add", "lan0", "type", "bridge")
        _ip("-n", first, "addr", "add", f"{self.address(0)}/24", "dev", "lan0")
        _ip("-n", first, "link", "set", "lan0", "up")
        for i, host in enumerate(self.hosts[1:], 1):
            _ip("-n", first, "link", "add", f"port{i}", "type", "veth", "peer", "name", "eth0",
                "netns", host)
            _ip("-n", first, "link", "set", f"port{i}", "master", "lan0", "up")
            _ip("-n", host, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            _ip("-n", host, "link", "set", "eth0", "up")
        return self

    def cut(self, index: int) -> None:
        """Take the host's switch port down: its link is dead, both ways, silently."""
        _ip("-n", self.hosts[0], "link", "set", f"port{index}", "down")

    def restore(self, index: int) -> None:
        _ip("-n", self.hosts[0], "link", "set", f"port{index}", "up")

    def state(self, index: int) -> dict[str, str]:
        """The host's own state roots (its image store and its live sandboxes), as environment."""
        base = self.root / f"host{index}"
        return {"SANDBOX_STATE_DIR": str(base / "lib"), "SANDBOX_RUN_DIR": str(base / "run")}

    def popen(self, index: int, args: list[str], log: Path, **extra: str) -> subprocess.Popen:
        """A process on the host: its network namespace, its state roots; output to ``log``."""
        environ = {**env(), **self.state(index), **extra}
        with open(log, "ab") as out:
            return subprocess.Popen(["nsenter", f"--net=/run/netns/{self.hosts[index]}", "--", *args],
                                    env=environ, stdout=out, stderr=subprocess.STDOUT)

    def sandboxes(self, index: int) -> list[str]:
        """The live sandboxes the host has records of."""
        path = Path(self.state(index)["SANDBOX_RUN_DIR"]) / "sandboxes"
        return sorted(os.listdir(path)) if path.is_dir() else []

    def stop(self) -> None:
        for host in reversed(self.made):  # its veths and bridge go with it
            subprocess.run(["ip", "netns", "delete", host], check=False)
        self.made.clear()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class LanRedis:
    """redis-server on the LAN's first host, with its append-only file (AOF) on."""

    def __init__(self, lan: Lan, port: int = 6379) -> None:
        self.lan = lan
        self.dir = lan.root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://{lan.address(0)}:{port}/0"
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> "LanRedis":
        self.proc = self.lan.popen(0, ["redis-server", "--bind", self.lan.address(0), "--port",
                                       str(self.port), "--appendonly", "yes", "--save", "",
                                       "--protected-mode", "no", "--dir", str(self.dir)],
                                   self.lan.root / "redis.log")
        conn = self.client()
        for _ in range(250):
            try:
                conn.ping()
                return self
            except Exception:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start: {(self.lan.root / 'redis.log').read_text()}")

    def client(self) -> Any:
        """A client on the first host (the submitter's), with the queue's connection options."""
        from jobs import connection_options

        cls = type("FirstHostConnection", (_ConnectionIn,), {"netns": self.lan.hosts[0]})
        pool = redis.ConnectionPool.from_url(self.url, connection_class=cls,
                                             **connection_options(self.url))
        return redis.Redis(connection_pool=pool)

    def restart(self, down_for: float = 0.0) -> None:
        """SIGTERM (Redis writes its AOF out), ``down_for`` seconds, start again on the same file."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


class _ConnectionIn(redis.connection.Connection):
    """A redis-py connection whose socket is made in the network namespace ``netns``."""

    netns = ""

    def _connect(self):
        with inside(self.netns):
            return super()._connect()


@contextmanager
def inside(netns: str) -> Iterator[None]:
    """This thread in the named network namespace, for the block (per thread: setns(2))."""
    from sandbox.linux.syscalls import CLONE_NEWNET, setns

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target, CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(own, CLONE_NEWNET)
    finally:
        os.close(own)


def worker_command(url: str, queue: str, name: str) -> list[str]:
    return [sys.executable, "-m", "sandbox", "worker", "--redis", url, "--queue", queue,
            "--name", name]
