"""Sandboxes that outlive their client (``sandbox.supervisor``), through the lifecycle verbs.

A supervisor process per sandbox: it runs the sandbox, keeps its layer and
log across stop and start, restarts it on a policy, and is asked through
its socket; what it leaves when it dies is reclaimed by gc. The CLI's side
of the same verbs is in test_lifecycle_cli.py.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from sandbox import Limits, SandboxSpec, StateError, collect_garbage, state
from sandbox.execute import exec_into
from sandbox.supervisor import client, layer, lifecycle
from sandbox.supervisor.launch import StartFailed
from sandbox.supervisor.options import RestartPolicy, SupervisorOptions
from sandbox.supervisor.status import read_status, supervisor_alive

pytestmark = pytest.mark.root

LOOP = "echo started; while :; do sleep 0.05; done"


def detached(script=LOOP, *, options=None, **changes):
    spec = SandboxSpec(image="busybox", command=["sh", "-c", script], **changes)
    return lifecycle.run_detached(spec, options or SupervisorOptions()).id


def status_of(ref):
    return read_status(lifecycle.supervised(ref)[0])


def wait_until(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def sh(ref, script):
    return exec_into(ref, ["sh", "-c", script]).run()


@pytest.fixture
def removed_after():
    """Ids to remove at the end whatever happened (the leak check then sees nothing)."""
    ids: list[str] = []
    yield ids
    for sandbox_id in ids:
        try:
            lifecycle.remove(sandbox_id, force=True)
        except StateError:
            pass


def test_a_detached_sandbox_runs_without_its_client_and_stops_kept(removed_after):
    sid = detached(name="kept")
    removed_after.append(sid)
    assert status_of(sid).state == "running" and supervisor_alive(lifecycle.supervised(sid)[0])
    assert sh("kept", "echo data > /root/file; echo ok").stdout == b"ok\n"
    assert lifecycle.stop("kept", timeout=5) == 128 + signal.SIGTERM
    status = status_of(sid)
    assert status.state == "exited" and status.exit_code == 143
    wait_until(lambda: not supervisor_alive(lifecycle.supervised(sid)[0]))
    assert os.path.ismount(layer.layer_path(sid))  # the writable layer stays, on the host
    with pytest.raises(StateError, match="is not running"):
        exec_into("kept", ["true"])


def test_start_again_keeps_the_id_name_writable_layer_and_log(removed_after):
    sid = detached(name="again")
    removed_after.append(sid)
    assert sh("again", "echo kept > /root/file; echo gone > /tmp/file").exit_code == 0
    lifecycle.stop("again", timeout=1)
    wait_until(lambda: not supervisor_alive(lifecycle.supervised(sid)[0]))
    assert lifecycle.start("again").id == sid
    assert sh("again", "cat /root/file").stdout == b"kept\n"  # the same writable layer
    assert sh("again", "cat /tmp/file 2>&1; true").stdout != b"gone\n"  # /tmp: as after a boot
    log = (lifecycle.supervised(sid)[0].log_path).read_text()
    assert log.count('"started\\n"') == 2  # both runs, one log
    with pytest.raises(StateError, match="running already"):
        lifecycle.start("again")


def test_rm_refuses_a_running_sandbox_without_force_and_leaves_nothing(removed_after):
    sid = detached(name="remove-me")
    removed_after.append(sid)
    with pytest.raises(StateError, match="is running"):
        lifecycle.remove("remove-me")
    lifecycle.remove("remove-me", force=True)
    assert not layer.layer_path(sid).exists()
    with pytest.raises(StateError, match="no such sandbox"):
        lifecycle.supervised("remove-me")


def test_a_stopped_sandbox_is_removed_without_force(removed_after):
    sid = detached("exit 0")
    removed_after.append(sid)
    assert lifecycle.wait(sid) == 0
    lifecycle.remove(sid)
    assert not layer.layer_path(sid).exists()


def test_auto_remove_removes_it_at_its_end(removed_after):
    sid = detached("exit 5", options=SupervisorOptions(auto_remove=True))
    removed_after.append(sid)
    wait_until(lambda: not (state.sandboxes_dir() / sid).exists())
    assert not layer.layer_path(sid).exists()


def test_restart_on_failure_restarts_at_most_n_times_then_waits_report_the_last_status(
        removed_after):
    sid = detached("echo run; exit 3",
                   options=SupervisorOptions(restart=RestartPolicy.parse("on-failure:2")))
    removed_after.append(sid)
    assert lifecycle.wait(sid) == 3
    status = status_of(sid)
    assert status.restarts == 2 and status.state == "exited"
    assert lifecycle.supervised(sid)[0].log_path.read_text().count('"run\\n"') == 3


def test_a_stopped_sandbox_is_not_restarted(removed_after):
    sid = detached(options=SupervisorOptions(restart=RestartPolicy.parse("always")))
    removed_after.append(sid)
    lifecycle.stop(sid, timeout=1)
    wait_until(lambda: not supervisor_alive(lifecycle.supervised(sid)[0]))
    assert status_of(sid).restarts == 0 and status_of(sid).state == "exited"


def test_kill_sends_the_signal_to_the_command(removed_after):
    sid = detached("trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.05; done")
    removed_after.append(sid)
    lifecycle.kill(sid, signal.SIGUSR1)
    log = lifecycle.supervised(sid)[0].log_path
    wait_until(lambda: log.exists() and "got-usr1" in log.read_text())
    lifecycle.kill(sid)  # SIGKILL: the whole sandbox
    assert lifecycle.wait(sid) == 137


def test_a_command_that_is_not_there(removed_after):
    spec = SandboxSpec(image="busybox", command=["no-such-command"], name="missing")
    with pytest.raises(StartFailed) as info:
        lifecycle.run_detached(spec, SupervisorOptions())
    removed_after.append("missing")
    assert info.value.exit_status == 127
    assert status_of("missing").state == "created" and "not found" in status_of("missing").message


def test_an_attached_client_gets_the_output_and_the_exit(removed_after):
    spec = SandboxSpec(image="busybox", command=["sh", "-c", "read line; echo got $line; exit 4"],
                       interactive=True)
    launched = lifecycle.run_detached(spec, SupervisorOptions(), attach=True)
    removed_after.append(launched.id)
    att = launched.attachment
    try:
        att.send_input(b"hello\n")
        frames = []
        while not any(kind == b"x" for kind, _ in frames):
            got = att.read()
            assert got is not None
            frames += got
    finally:
        att.close()
    assert b"".join(p for k, p in frames if k == b"o") == b"got hello\n"
    assert b'"exit_code": 4' in next(p for k, p in frames if k == b"x")


@pytest.mark.no_leak_check
def test_a_killed_supervisor_takes_its_sandbox_and_gc_reclaims_what_is_left(removed_after):
    from tests.conftest import leaks_since, snapshot

    before = snapshot()
    sid = detached(name="orphan")
    removed_after.append(sid)
    sdir = lifecycle.supervised(sid)[0]
    owner = int((sdir.path / "supervisor.pid").read_text().split('"pid": ')[1].split(",")[0])
    os.kill(owner, signal.SIGKILL)
    wait_until(lambda: not supervisor_alive(sdir))
    report = collect_garbage()
    assert f"{sid} (its supervisor died)" in report.removed
    status = status_of(sid)
    assert status.state == "exited" and "supervisor died" in status.message
    assert lifecycle.start(sid).id == sid  # kept: it can start again
    lifecycle.remove(sid, force=True)
    assert not leaks_since(before)


def test_requests_to_a_sandbox_that_does_not_run_say_so(removed_after):
    sid = detached("exit 0")
    removed_after.append(sid)
    lifecycle.wait(sid)
    wait_until(lambda: not supervisor_alive(lifecycle.supervised(sid)[0]))
    with pytest.raises(StateError, match="is not running"):
        lifecycle.kill(sid)
    with pytest.raises(StateError, match="is not running"):
        client.request(lifecycle.supervised(sid)[0], "status")


def test_idle_timeout_ends_a_detached_sandbox(removed_after):
    sid = detached(limits=Limits(idle_timeout="0.3s"))
    removed_after.append(sid)
    assert lifecycle.wait(sid) == 137
    assert "idle" in status_of(sid).message


def test_a_multi_threaded_caller_starts_its_supervisor_as_a_new_program(removed_after):
    """As the daemon would: from a process with threads the supervisor is not forked from
    it but run as `python -m sandbox.supervisor`; the sandbox works the same."""
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="a-caller-thread")
    thread.start()
    try:
        sid = detached(name="threaded")
        removed_after.append(sid)
        supervisor = json.loads((state.SandboxDir(sid).path / "supervisor.pid").read_text())["pid"]
        with open(f"/proc/{supervisor}/cmdline", "rb") as f:
            assert b"sandbox.supervisor" in f.read()  # a program of its own, not a fork of ours
        assert status_of(sid).state == "running"
        assert sh("threaded", "echo ok").stdout == b"ok\n"
        assert lifecycle.stop("threaded", timeout=5) == 128 + signal.SIGTERM
    finally:
        release.set()
        thread.join()
