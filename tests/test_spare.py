"""The zygote's spare: a container's first process forked ahead of the request."""

import contextlib
import os
import threading

import pytest

from sandbox import CommandNotFound, Limits, NetworkSpec, SandboxSpec, SetupError, run
from sandbox import linux
from sandbox.plan import ExecPlan, Op, Plan
from sandbox.process.spare import fits, spare_flags
from sandbox.process.spawner import Zygote

from .helpers import wait_for

FLAGS = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWNET


def _plan(flags=FLAGS | linux.CLONE_NEWCGROUP, pre_ops=()):
    exec_plan = ExecPlan(argv=("true",), env={}, user="0", workdir="/", keep_caps=0,
                         ids=(0, 0, (0,), "/root"))
    return Plan("id", (), flags, (), exec_plan, pre_ops=pre_ops)


def test_a_spare_fits_plans_with_the_same_namespaces_and_nothing_to_run_on_the_host():
    assert spare_flags(FLAGS | linux.CLONE_NEWCGROUP) == FLAGS
    assert fits(_plan(), FLAGS)
    assert not fits(_plan(flags=FLAGS & ~linux.CLONE_NEWNET | linux.CLONE_NEWCGROUP), FLAGS)
    assert not fits(_plan(pre_ops=(Op("call", ("x.y",), "veth"),)), FLAGS)
    assert fits(_plan()._replace(hold=True), FLAGS)  # a Python target's plan


@contextlib.contextmanager
def _threaded():
    """Make this process multi-threaded, so spawns go through the zygote."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _spares_of(zygote_pid):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm == "sandbox-spare" and int(fields[1]) == zygote_pid:
            found.append(int(pid))
    return found



@pytest.mark.root
def test_threaded_callers_run_through_the_spare_and_it_holds_only_its_socket():
    spec = SandboxSpec(image="busybox", command=["sh", "-c", "echo $$; cat /proc/self/cgroup"])
    with _threaded():
        results = [run(spec) for _ in range(3)]
        zygote = Zygote.get().proc.pid
        (spare,) = wait_for(lambda: _spares_of(zygote))
        fds = sorted(os.listdir(f"/proc/{spare}/fd"), key=int)
        # /dev/null on 0-2, its socketpair end, and a netlink socket opened in the host's
        # network namespace before unshare (for a bridge plan's veth request); nothing else
        assert fds[:3] == ["0", "1", "2"] and len(fds) == 5 and all(int(fd) > 3 for fd in fds[3:])
        assert all(os.readlink(f"/proc/{spare}/fd/{fd}") == "/dev/null" for fd in fds[:3])
        assert all(os.readlink(f"/proc/{spare}/fd/{fd}").startswith("socket:") for fd in fds[3:])
    for result in results:
        assert result.exit_code == 0
        pid, *cgroups = result.stdout.decode().split()
        assert pid == "2" and all(line.endswith(":/") for line in cgroups)


@pytest.mark.root
def test_setup_errors_through_the_spare_name_the_step():
    with _threaded():
        assert run(SandboxSpec(image="busybox", command=["true"])).exit_code == 0
        with pytest.raises(SetupError, match="workdir /etc/passwd"):
            run(SandboxSpec(image="busybox", command=["true"], workdir="/etc/passwd"))
        with pytest.raises(CommandNotFound):
            run(SandboxSpec(image="busybox", command=["no-such-command"]))
        host = SandboxSpec(image="busybox", command=["true"], network=NetworkSpec("host"))
        assert run(host).exit_code == 0
        assert run(SandboxSpec(image="busybox", command=["true"])).exit_code == 0


@pytest.mark.root
def test_the_next_container_is_the_spare_handed_its_plan_by_the_owner():
    from sandbox import Sandbox

    spec = SandboxSpec(image="busybox", command=["true"])
    with _threaded():
        assert run(spec).exit_code == 0
        zygote = Zygote.get().proc.pid
        (spare,) = wait_for(lambda: _spares_of(zygote))
        with Sandbox(spec) as sb:
            assert sb.process.pid == spare
            assert sb.wait().exit_code == 0


@pytest.mark.root
def test_a_spare_makes_proc_dev_and_sys_ahead_in_its_own_mount_namespace_only():
    spec = SandboxSpec(image="busybox", command=["sh", "-c", "cat /proc/keys | wc -c; ls /dev/pts /dev/null"])
    staging = os.path.join(os.environ["SANDBOX_RUN_DIR"], "staging")
    wanted = {f"{staging}/{p}" for p in ("proc", "dev", "dev/pts", "dev/shm", "sys", "proc/keys",
                                         "proc/sys", "sys/firmware")}

    def staged(pid):
        with open(f"/proc/{pid}/mountinfo") as f:
            return wanted <= {line.split()[4] for line in f}

    with _threaded():
        assert run(spec).exit_code == 0
        zygote = Zygote.get().proc.pid
        (spare,) = wait_for(lambda: _spares_of(zygote))
        wait_for(lambda: staged(spare))
        with open("/proc/self/mountinfo") as f:
            assert staging not in f.read()  # nothing of it on the host
        result = run(spec)
    assert result.exit_code == 0 and result.stdout.split() == [b"0", b"/dev/null", b"/dev/pts:", b"ptmx"]


@pytest.mark.root
def test_a_cgroup_that_cannot_be_made_while_the_spare_mounts_leaves_nothing(monkeypatch):
    """The owner makes the cgroup after handing the plan over; if that fails, the spare dies."""
    from sandbox import LimitError

    # create() refuses CPUs this host lacks before anything is made: let the kernel refuse it
    monkeypatch.setattr("sandbox.runtime.check_host_limits", lambda limits: None)
    ok = SandboxSpec(image="busybox", command=["true"])
    bad = SandboxSpec(image="busybox", command=["true"], limits=Limits(cpuset="63"))  # no such CPU
    with _threaded():
        assert run(ok).exit_code == 0
        zygote = Zygote.get().proc.pid
        (spare,) = wait_for(lambda: _spares_of(zygote))
        with pytest.raises(LimitError, match="cpuset.cpus"):
            run(bad)
        wait_for(lambda: not os.path.exists(f"/proc/{spare}/stat")
                 or open(f"/proc/{spare}/stat").read().split(") ")[1][0] == "Z")
        assert run(ok).exit_code == 0  # the next one gets a fresh spare
