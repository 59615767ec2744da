"""The fork server (sandbox.process.forkserver): what it holds, when it steps aside, how it ends.

What a served target sees and returns is tested with every other target
(test_target.py runs each of its tests through a server too). Here: the
server's own contract. It holds no fd of its owner's, forks targets as its
owner's children, hands the work back to the owner (which forks the target
itself) when it cannot do it, and never outlives its owner.
"""

import os
import signal
import subprocess
import sys

import pytest

from sandbox import Sandbox, SandboxSpec
from sandbox.process.forkserver import NAME, ForkServer, ServedTarget

from .helpers import live_name, wait_for

pytestmark = pytest.mark.root


def run(server, key, local):
    spec = SandboxSpec(image="host", command=["python-target"])
    with Sandbox(spec, target=ServedTarget(server, key, local), log_file=False) as box:
        return box.wait()


@pytest.fixture(autouse=True)
def through_the_zygote(monkeypatch):
    monkeypatch.setenv("SANDBOX_SPAWN", "zygote")  # targets forked into held containers


def write(text):
    os.write(1, text.encode())
    return 0


def test_targets_are_named_by_key_and_forked_by_the_server():
    targets = {"a": lambda: write("a ran"), "b": lambda: write("b ran") or 4}
    server = ForkServer(targets.__getitem__)
    try:
        first, second = run(server, "a", lambda: 99), run(server, "b", lambda: 99)
    finally:
        server.close()
    # the server's copies ran (the local callables would have returned 99)
    assert (first.exit_code, first.stdout, second.exit_code, second.stdout) == (0, b"a ran", 4, b"b ran")
    assert server.forked == 2


def test_the_server_holds_only_its_socket_and_is_named():
    r, w = os.pipe()  # an fd of the owner's: the server must not keep it open
    server = ForkServer(lambda key: None)
    try:
        held = {int(fd): os.readlink(f"/proc/{server.pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{server.pid}/fd")}
        with open(f"/proc/{server.pid}/comm") as f:
            name = f.read().strip()
    finally:
        server.close()
        os.close(r)
        os.close(w)
    assert [held.pop(fd) for fd in (0, 1, 2)] == ["/dev/null"] * 3 and name == NAME
    assert len(held) == 1 and next(iter(held.values())).startswith("socket:")
    assert not os.path.exists(f"/proc/{server.pid}")  # closed: gone and reaped


def test_a_key_the_server_cannot_resolve_runs_the_local_target():
    server = ForkServer({"known": lambda: 0}.__getitem__)
    try:
        result = run(server, "unknown", lambda: write("local ran"))
        assert server.alive()  # the server is still there for the next target
    finally:
        server.close()
    assert result.exit_code == 0 and result.stdout == b"local ran" and server.forked == 0


def test_a_dead_server_is_reaped_and_the_owner_forks_instead():
    server = ForkServer(lambda key: lambda: write("served"))
    os.kill(server.pid, signal.SIGKILL)
    wait_for(lambda: live_name(server.pid) is None, timeout=5)  # a zombie: ours to reap
    result = run(server, "key", lambda: write("local ran"))
    assert result.stdout == b"local ran" and not server.alive()
    assert not os.path.exists(f"/proc/{server.pid}")  # reaped, not left a zombie
    server.close()  # closing twice is harmless


def test_the_server_dies_with_its_owner():
    owner = subprocess.run(
        [sys.executable, "-c", "import os\n"
         "from sandbox.process.forkserver import ForkServer\n"
         "print(ForkServer(lambda key: None).pid, flush=True)\n"
         "os._exit(0)  # no close(): the server must end by itself\n"],
        capture_output=True, text=True, timeout=60, check=True)
    pid = int(owner.stdout)
    # gone, or its pid reused by another process
    wait_for(lambda: live_name(pid) != NAME, timeout=10)
