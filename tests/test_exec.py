"""A process started in a running sandbox (``Sandbox.exec``, ``execute.exec_into``).

Checked from /proc on the host: the same namespaces as the sandbox's init
(inode by inode), its cgroup, its capabilities, no fd of ours, its own exit
status, and its end with the sandbox. Both ways it can be forked (here, and
by the zygote for a threaded process) run every test.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from sandbox import CommandNotFound, Limits, SandboxSpec, StateError
from sandbox.execute import exec_into
from sandbox.runtime import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("spawn_mode")]

NAMESPACES = ("mnt", "uts", "ipc", "net", "cgroup", "pid")


def sleeper(**changes) -> Sandbox:
    return Sandbox(SandboxSpec(image="busybox", command=["sleep", "1000"], **changes))


def init_pid(sb: Sandbox) -> int:
    return sb.process.pid


def ns_inode(pid: int | str, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def test_an_exec_joins_every_namespace_and_the_cgroup_of_the_sandboxs_init():
    with sleeper() as sb:
        exe = sb.exec(["sh", "-c", "for n in mnt uts ipc net cgroup pid; do "
                                   "readlink /proc/self/ns/$n; done; cat /proc/self/cgroup; "
                                   "echo pid=$$ ppid=$PPID"])
        result = exe.run()
        lines = result.stdout.decode().splitlines()
        assert lines[:6] == [ns_inode(init_pid(sb), n) for n in NAMESPACES]
        assert all(ns_inode(init_pid(sb), n) != ns_inode("self", n) for n in ("mnt", "pid"))
        assert lines[6] == "0::/" or lines[6].endswith(":/")  # the sandbox's cgroup, from inside
        assert lines[-1].startswith("pid=") and lines[-1].endswith(" ppid=0")  # parent: outside


def test_the_exec_runs_in_the_sandboxs_cgroup_as_the_host_sees_it():
    with sleeper() as sb:
        exe = sb.exec(["sh", "-c", "echo $$; sleep 1000"])
        exe.start()
        try:
            host_pid = exe._monitor.command_pid
            with open(f"/proc/{host_pid}/cgroup") as mine, open(f"/proc/{init_pid(sb)}/cgroup") as its:
                assert mine.read() == its.read()
            for n in NAMESPACES:
                assert ns_inode(host_pid, n) == ns_inode(init_pid(sb), n)
        finally:
            exe.close()


def test_an_exec_has_its_own_exit_status_and_streams_and_the_sandbox_goes_on():
    with sleeper() as sb:
        result = sb.exec(["sh", "-c", "echo out; echo err >&2; exit 7"]).run()
        assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
        assert sb.exec(["true"]).run().exit_code == 0
        assert not sb.ended()


def test_an_exec_has_the_sandboxs_user_capabilities_and_environment_unless_told():
    with sleeper(user="1000:1000", env={"A": "from-run"}, workdir="/tmp") as sb:
        script = "id -u; pwd; echo $A $B; grep -E 'Cap(Bnd|Eff)|NoNewPrivs' /proc/self/status"
        own = sb.exec(["sh", "-c", script]).run().stdout.decode().split("\n")
        assert own[:3] == ["1000", "/tmp", "from-run"]
        with open(f"/proc/{init_pid(sb)}/task/{init_pid(sb)}/children") as f:
            command = f.read().split()[0]  # the sandbox's own command, sleep
        with open(f"/proc/{command}/status") as f:
            its = [line for line in f.read().split("\n")
                   if line.startswith(("CapBnd", "CapEff", "NoNewPrivs"))]
        assert sorted(own[3:6]) == sorted(its)  # the same capabilities and no_new_privs
        other = sb.exec(["sh", "-c", script], user="0", workdir="/", env={"B": "b"}).run()
        assert other.stdout.decode().split("\n")[:3] == ["0", "/", "from-run b"]


def test_no_fd_of_the_caller_reaches_the_exec():
    keep = os.open("/dev/null", os.O_RDONLY)  # an inheritable fd of ours
    os.set_inheritable(keep, True)
    try:
        with sleeper() as sb:
            result = sb.exec(["sh", "-c", "ls /proc/$$/fd; exit 0"]).run()  # the shell's fds
    finally:
        os.close(keep)
    fds = set(result.stdout.split())
    assert fds == {b"0", b"1", b"2"}, fds


def test_limits_hold_for_an_exec():
    with sleeper(limits=Limits(pids=8)) as sb:
        result = sb.exec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait"]).run()
        assert result.exit_code != 0 or b"fork" in result.stderr.lower()


def test_an_exec_dies_with_its_sandbox():
    with sleeper() as sb:
        exe = sb.exec(["sleep", "1000"])
        exe.start()
        sb.kill()
        result = exe.wait(30)
        sb.wait(30)
    assert result.exit_code == 137 and result.signal == signal.SIGKILL


def test_killing_an_exec_ends_its_command_not_the_sandbox():
    with sleeper() as sb:
        exe = sb.exec(["sleep", "1000"])
        exe.start()
        exe.kill()
        assert exe.wait(30).exit_code == 137
        time.sleep(0.1)
        assert not sb.ended()


def test_an_exec_on_a_terminal():
    with sleeper() as sb, sb.spawn(["sh"], tty_size=(33, 77)) as sh:
        sh.expect("# ")
        sh.sendline("tty; stty size; echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$")
        sh.expect(r"sid=(\d+) pid=(\d+)")
        assert sh.match.group(1) == sh.match.group(2)
        assert b"/dev/pts/0" in sh.before and b"33 77" in sh.before
        sh.sendline("exit 3")
        assert sh.wait(10).exit_code == 3


def test_exec_by_name_from_the_state_on_disk():
    with sleeper(name="exec-by-name") as sb:
        result = exec_into("exec-by-name", ["hostname"]).run()
        assert result.stdout == b"sandbox\n" and result.id == sb.id


def test_an_exec_into_a_sandbox_that_is_not_running_or_being_removed_is_refused():
    with pytest.raises(StateError, match="no such sandbox"):
        exec_into("no-such-sandbox", ["true"])
    sb = sleeper(name="exec-ended")
    with sb:
        sb.kill()
        sb.wait(30)
        with pytest.raises(StateError, match="is not running"):
            exec_into("exec-ended", ["true"])
    with sleeper() as sb:
        sb.dir.mark_removed()
        with pytest.raises(StateError, match="is being removed"):
            exec_into(sb.id, ["true"])
        (sb.dir.path / "removed").unlink()


def test_a_command_that_is_not_there_fails_with_127():
    with sleeper() as sb, pytest.raises(CommandNotFound) as info:
        sb.exec(["no-such-command"]).run()
    assert info.value.exit_status == 127
