"""A Python target (a callable of this process) run inside a sandbox, three ways.

``direct``: this process forks the init and the init forks the target;
``zygote``: a spare holds the container ready and this process forks the
target into it (``sandbox.process.target``); ``served``: as ``zygote``, but
a fork server made from this process forks the target
(``sandbox.process.forkserver``). What the target sees and what comes back
must not depend on the way.

The targets write with os.write: sys.stdout is this process's object, which
pytest's capture points at a file the sandbox does not have.
"""

import os
import signal
import socket
import time

import pytest

from sandbox import Limits, Mount, Sandbox, SandboxSpec, SetupError
from sandbox.process.forkserver import ForkServer, ServedTarget

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("spawn_mode")]
WAY = {}


@pytest.fixture(params=["direct", "zygote", "served"])
def spawn_mode(request, monkeypatch):
    """As the suite's spawn_mode, with a third way: through a fork server."""
    monkeypatch.setenv("SANDBOX_SPAWN", "direct" if request.param == "direct" else "zygote")
    WAY["served"] = request.param == "served"
    return request.param


def say(*words):
    os.write(1, (" ".join(map(str, words)) + "\n").encode())


def run_target(target, **spec_fields):
    spec = SandboxSpec(image="host", command=["python-target"], **spec_fields)
    server = None
    if WAY.get("served"):
        server = ForkServer(lambda key: target)  # made now: its copy knows the target
        target = ServedTarget(server, "the target", target)
    try:
        with Sandbox(spec, target=target, log_file=False) as box:
            result = box.wait()
    finally:
        if server is not None:
            server.close()
    # the server forked it, not this process (a setup error may come before the fork)
    assert server is None or server.forked == 1
    return result


def test_the_target_status_and_output_come_back():
    def target():
        os.write(1, b"hello from the target\n")
        return 3

    r = run_target(target)
    assert r.exit_code == 3 and r.stdout == b"hello from the target\n"


def test_the_target_is_inside_every_namespace():
    host = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in ("pid", "mnt", "uts", "ipc", "net")}

    def target():
        pid1 = open("/proc/1/cmdline", "rb").read().split(b"\0")[0]
        seen = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in host}
        same = sorted(ns for ns in host if seen[ns] == host[ns])
        say(socket.gethostname(), same, os.path.exists("/proc/self/ns"), pid1 != b"",
            sorted(os.listdir("/sys/class/net")), open("/proc/self/cgroup").read().strip())
        return 0

    r = run_target(target)
    assert r.exit_code == 0, r.stderr
    hostname, rest = r.stdout.decode().split(" ", 1)
    assert hostname == "sandbox"
    assert rest.startswith("[] True True ['lo']")  # no namespace shared with this process
    assert rest.rstrip().endswith(":/")  # the cgroup namespace's root is the sandbox's cgroup


def test_writes_stay_in_the_sandbox(tmp_path):
    outside = tmp_path / "written-inside"

    def target():
        with open("/tmp/x", "w") as f:
            f.write("inside")
        try:
            open(outside, "w")
        except OSError as exc:
            say(type(exc).__name__)
        return 0

    r = run_target(target)
    assert r.exit_code == 0 and r.stdout.strip() in (b"FileNotFoundError", b"PermissionError",
                                                       b"OSError")
    assert not outside.exists()


def test_user_env_and_workdir_are_the_specs():
    os.environ["ONLY_ON_THE_HOST"] = "1"
    try:
        r = run_target(lambda: say(os.getuid(), os.getgid(), os.getcwd(),
                                     os.environ.get("X"), "ONLY_ON_THE_HOST" in os.environ),
                       user="65534:65534", workdir="/tmp", env={"X": "y"})
    finally:
        del os.environ["ONLY_ON_THE_HOST"]
    assert r.stdout == b"65534 65534 /tmp y False\n"


def test_abort_is_sigabrt_and_a_raise_is_status_1():
    r = run_target(os.abort)
    assert r.signal == signal.SIGABRT and r.exit_code == 128 + signal.SIGABRT

    def boom():
        raise ValueError("boom")

    r = run_target(boom)
    assert r.exit_code == 1 and b"ValueError: boom" in r.stderr


def test_a_target_printing_to_a_stream_it_cannot_use_still_exits_cleanly():
    class Closed:
        def write(self, _text):
            raise OSError(9, "Bad file descriptor")

        def flush(self):
            raise OSError(9, "Bad file descriptor")

    def target():
        import sys

        sys.stdout = sys.stderr = Closed()
        print("lost")

    r = run_target(target)
    assert r.exit_code == 1 and b"OSError" in r.stderr


def test_the_memory_limit_holds_for_the_target():
    r = run_target(lambda: len(bytearray(256 << 20)), limits=Limits(memory=64 << 20))
    assert r.oom_killed and r.signal == signal.SIGKILL


def test_a_timeout_kills_the_target():
    r = run_target(lambda: time.sleep(60), limits=Limits(timeout=0.3))
    assert r.timed_out and r.signal == signal.SIGKILL


def test_sigterm_reaches_the_target():
    def target():
        signal.signal(signal.SIGTERM, lambda *_: os._exit(7))
        say("ready")
        time.sleep(60)

    spec = SandboxSpec(image="host", command=["python-target"])
    with Sandbox(spec, target=target, log_file=False) as box:
        while b"ready" not in box.stdout:
            box._monitor.done.wait(0.01)
        box.kill(signal.SIGTERM)
        assert box.wait().exit_code == 7


def test_what_the_target_leaves_running_dies_with_it():
    def target():
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        return 0

    r = run_target(target)
    assert r.exit_code == 0  # returned although a child of the target still ran


def test_a_workdir_that_is_a_file_is_a_setup_error():
    with pytest.raises(SetupError) as info:
        run_target(lambda: 0, workdir="/etc/passwd")
    assert "/etc/passwd" in str(info.value)


def test_a_workdir_the_user_cannot_enter_fails_where_the_target_starts(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    with pytest.raises(SetupError) as info:
        run_target(lambda: 0, user="65534", workdir="/data/locked",
                   mounts=[Mount(str(tmp_path), "/data")])
    assert info.value.step == "workdir /data/locked" and "Permission denied" in str(info.value)


def test_through_the_zygote_the_target_is_this_process_s_child(spawn_mode):
    r = run_target(lambda: say(os.getppid()))
    # direct: forked by the init (pid 1); zygote: forked by us, outside its pid namespace;
    # served: forked by the server as our child (CLONE_PARENT)
    assert r.stdout == (b"1\n" if spawn_mode == "direct" else b"0\n")
