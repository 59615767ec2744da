"""Teardown after every kind of ending: nothing is left behind (the leak check verifies)."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from sandbox import Sandbox, SandboxError, SandboxSpec, run, state

from .helpers import REPO, popen_cli, sandbox_cli, wait_for

pytestmark = pytest.mark.root

SLEEPER = SandboxSpec(image="busybox", command=["sh", "-c", "echo ready; exec sleep 1000"])


def _ready(sb):
    return wait_for(lambda: b"ready" in sb.stdout)


def test_exception_in_the_with_block_tears_down():
    with pytest.raises(RuntimeError), Sandbox(SLEEPER) as sb:
        _ready(sb)
        raise RuntimeError("boom")
    assert sb.state == "destroyed"


def test_exception_in_an_output_callback_kills_the_sandbox_and_is_reported():
    def bad_callback(record):
        raise ValueError("callback failed")

    with pytest.raises(SandboxError, match="output handler failed"):
        run(SLEEPER, on_output=bad_callback)


def test_destroy_while_running_kills_everything():
    sb = Sandbox(SandboxSpec(image="busybox", command=["sh", "-c",
                 "(setsid sh -c 'sleep 1000' &); (sleep 1000 &); echo ready; sleep 1000"]))
    sb.create()
    sb.start()
    _ready(sb)
    sb.destroy()
    sb.destroy()  # idempotent


def test_destroy_after_a_failed_start_undoes_create():
    sb = Sandbox(SandboxSpec(image="busybox", command=["missing"]))
    sb.create()
    with pytest.raises(SandboxError):
        sb.start()
    sb.destroy()


def test_ctrl_c_on_sandbox_run_tears_down():
    proc = popen_cli("run", "busybox", "--", "sh", "-c", "echo ready; exec sleep 1000")
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130


def test_sigterm_on_sandbox_run_tears_down():
    proc = popen_cli("run", "busybox", "--", "sh", "-c", "echo ready; exec sleep 1000")
    assert proc.stdout.readline() == b"ready\n"
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM


def test_a_signal_the_monitor_thread_takes_is_handled_while_the_caller_waits():
    """Python runs handlers in the main thread only; wait() must wake to run them.

    The signal is sent to the monitor's thread itself, as the kernel may do
    with a signal for the process; the handler kills the sandbox.
    """
    import threading

    sb = Sandbox(SandboxSpec(image="busybox", command=["sleep", "60"]))
    previous = signal.signal(signal.SIGUSR1, lambda *_: sb.kill())
    try:
        with sb:
            monitor = next(t for t in threading.enumerate() if t.name == "sandbox-monitor")
            threading.Timer(0.2, signal.pthread_kill, (monitor.ident, signal.SIGUSR1)).start()
            result = sb.wait()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert result.signal == signal.SIGKILL and not result.timed_out


def test_sigterm_at_any_moment_of_sandbox_run_ends_it_cleanly():
    """While the sandbox is being made or started, too: its status, no traceback, nothing left.

    The handler used to raise SystemExit wherever the main thread was, which
    could be inside a threading primitive ("release unlocked lock").
    """
    import random

    for delay in [random.uniform(0.05, 0.4) for _ in range(12)]:
        proc = popen_cli("run", "busybox", "--", "sh", "-c", "echo ready; exec sleep 1000")
        time.sleep(delay)
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        # -SIGTERM: it came before the handler was installed, when nothing was made yet
        assert proc.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), err
        assert b"Traceback" not in err, err


OWNER = textwrap.dedent("""
    import json, sys, threading
    from sandbox import Sandbox, SandboxSpec
    threaded = sys.argv[1] == "threaded"
    if threaded:  # a threaded owner goes through the zygote
        threading.Thread(target=lambda: threading.Event().wait(), daemon=True).start()
    sb = Sandbox(SandboxSpec(image="busybox", command=["sh", "-c",
        "(setsid sleep 1000 &); echo ready; exec sleep 1000"], **json.loads((sys.argv[2:] or ["{}"])[0])))
    sb.__enter__()
    while b"ready" not in sb.stdout:
        pass
    print(sb.id, flush=True)
    threading.Event().wait()
""")


@pytest.mark.no_leak_check
@pytest.mark.parametrize("mode, options", [
    pytest.param("direct", {}, id="direct"), pytest.param("threaded", {}, id="threaded"),
    # the init changes its credentials to become these, which clears PR_SET_PDEATHSIG
    pytest.param("direct", {"user": "1000"}, id="direct-user"),
    pytest.param("threaded", {"user": "1000"}, id="threaded-user"),
    pytest.param("direct", {"userns": "auto"}, id="direct-userns"),
    pytest.param("threaded", {"userns": "auto"}, id="threaded-userns"),
])
def test_a_killed_owner_takes_its_container_along_and_gc_cleans_up(mode, options):
    env = dict(os.environ, PYTHONPATH=REPO)
    owner = subprocess.Popen([sys.executable, "-c", OWNER, mode, json.dumps(options)],
                             stdout=subprocess.PIPE, env=env)
    sandbox_id = owner.stdout.readline().decode().strip()
    record = state.SandboxDir(sandbox_id).read_record()
    assert record.owner_pid == owner.pid
    inits = _inits_of(sandbox_id)
    assert inits
    owner.kill()
    owner.wait()
    wait_for(lambda: not _inits_of(sandbox_id))  # the kernel killed the container
    listed = sandbox_cli("ps", "-a")
    assert sandbox_id in listed.stdout.decode() and "orphaned" in listed.stdout.decode()
    gc = sandbox_cli("gc")
    assert gc.returncode == 0 and sandbox_id in gc.stdout.decode()
    assert not state.SandboxDir(sandbox_id).path.exists()
    from sandbox.cgroups import host_cgroups

    assert not [p for p in host_cgroups().leftovers() if sandbox_id in p]


def _inits_of(sandbox_id):
    from sandbox.cgroups import host_cgroups

    found = []
    for path in host_cgroups().leftovers():
        if path.endswith(sandbox_id):
            found += open(os.path.join(path, "cgroup.procs")).read().split()
    return found


def test_ps_rm_and_logs_from_another_process():
    with Sandbox(SLEEPER.with_changes(name="sleepy")) as sb:
        _ready(sb)
        listed = sandbox_cli("ps")
        assert "sleepy" in listed.stdout.decode() and sb.id in listed.stdout.decode()
        logs = sandbox_cli("logs", "sleepy")
        assert logs.stdout == b"ready\n"
        refused = sandbox_cli("rm", "sleepy")
        assert refused.returncode == 125 and b"running" in refused.stderr
        removed = sandbox_cli("rm", "-f", "sleepy")
        assert removed.returncode == 0
        result = sb.wait()
        assert result.signal == signal.SIGKILL
    missing = sandbox_cli("rm", "sleepy")
    assert missing.returncode == 125 and b"no such sandbox" in missing.stderr


def test_names_are_unique_among_live_sandboxes():
    with Sandbox(SLEEPER.with_changes(name="only-one")) as sb:
        _ready(sb)
        with pytest.raises(SandboxError, match="in use"):
            run(SandboxSpec(image="busybox", command=["true"], name="only-one"))
    assert run(SandboxSpec(image="busybox", command=["true"], name="only-one")).exit_code == 0


@pytest.fixture
def own_parent(monkeypatch):
    """A cgroup parent of this test's own, so what it asserts is not another test's doing."""
    monkeypatch.setenv("SANDBOX_CGROUP_PARENT", f"sandbox-parents-{os.getpid()}")
    from sandbox.cgroups import host_cgroups

    hierarchy = host_cgroups()
    yield hierarchy
    hierarchy.remove_parents()


def _parents_left(hierarchy):
    return [p for p in hierarchy.parent_paths() if os.path.isdir(p)]


def test_a_process_that_ran_a_sandbox_leaves_no_cgroup_parent(own_parent):
    r = sandbox_cli("run", "busybox", "--", "true")
    assert r.returncode == 0, r.stderr
    assert _parents_left(own_parent) == []


def test_the_parents_stay_while_another_process_runs_a_sandbox(own_parent):
    with Sandbox(SLEEPER) as sb:
        _ready(sb)
        r = sandbox_cli("run", "busybox", "--", "true")  # ends while ours runs
        assert r.returncode == 0, r.stderr
        assert _parents_left(own_parent)  # ours still uses them
    own_parent.remove_parents()  # what this process's exit does
    assert _parents_left(own_parent) == []


def test_a_sandbox_planned_while_another_thread_makes_the_parents_shares_them(own_parent, monkeypatch):
    """Two threads start sandboxes at once on parents nobody has made yet (a class's seats):
    the one that found them missing sees the other make them and shares them, rather than
    waiting for an exclusive lock that the other's live sandbox keeps from it."""
    from sandbox.cgroups.base import _open_dir
    from sandbox.spec import Limits

    other = _open_dir(own_parent.parent_paths()[0])  # the other thread's lock, held from now on
    fcntl.flock(other, fcntl.LOCK_SH)
    waiting, planned, failed = threading.Event(), [], []
    prepare = own_parent._prepare_parents_exclusively

    def waits_for_the_exclusive_lock(first):
        waiting.set()
        prepare(first)

    monkeypatch.setattr(own_parent, "_prepare_parents_exclusively", waits_for_the_exclusive_lock)

    def plan():
        try:
            planned.append(own_parent.plan(f"share-{os.getpid()}", Limits()))
        except SandboxError as exc:
            failed.append(exc)

    thread = threading.Thread(target=plan)
    thread.start()
    try:
        assert waiting.wait(30)  # it found the parents missing
        own_parent._prepare_parents()  # the other thread makes them
        thread.join(60)
        assert not failed, failed
        assert planned and planned[0].parents_lock >= 0
    finally:
        thread.join()
        for cgroup in planned:
            cgroup.remove()
        os.close(other)


@pytest.mark.no_leak_check
def test_gc_removes_the_parents_a_killed_process_left():
    env = dict(os.environ, SANDBOX_CGROUP_PARENT=f"sandbox-killed-{os.getpid()}")
    owner = subprocess.Popen([sys.executable, "-c", OWNER, "direct"], stdout=subprocess.PIPE,
                             env=dict(env, PYTHONPATH=REPO))
    assert owner.stdout.readline().strip()
    owner.kill()
    owner.wait()
    check = ("from sandbox.cgroups import host_cgroups; import os; "
             "print(sum(os.path.isdir(p) for p in host_cgroups().parent_paths()))")
    left = lambda: subprocess.run([sys.executable, "-c", check], env=dict(env, PYTHONPATH=REPO),  # noqa: E731
                                  capture_output=True, text=True).stdout.strip()
    assert left() != "0"  # SIGKILL: no exit handler ran
    gc = subprocess.run([sys.executable, "-m", "sandbox", "gc"], env=dict(env, PYTHONPATH=REPO),
                        capture_output=True, timeout=60)
    assert gc.returncode == 0, gc.stderr
    assert left() == "0"
