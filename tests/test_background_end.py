"""A sandbox started in the background tells its owner of its end, in its monitor's thread."""

import threading

import pytest

from sandbox import Sandbox, SandboxSpec, SetupError

pytestmark = pytest.mark.root


def test_on_ended_runs_once_in_the_monitor_thread_where_wait_and_destroy_work():
    box = Sandbox(SandboxSpec(image="busybox", command=["sh", "-c", "echo out; exit 3"]))
    box.create()
    ended = threading.Event()
    seen = []

    def on_ended(sandbox: Sandbox) -> None:
        result = sandbox.wait()  # returns at once: the loop has ended
        sandbox.destroy()
        seen.append((threading.current_thread().name, result.exit_code, result.stdout))
        ended.set()

    try:
        box.start(background=True, on_ended=on_ended)
        assert ended.wait(30)
    finally:
        box.destroy()
    assert seen == [("sandbox-monitor", 3, b"out\n")]


def test_on_ended_is_not_called_for_a_start_that_fails():
    box = Sandbox(SandboxSpec(image="busybox", command=["/no/such/command"]))
    box.create()
    calls = []
    try:
        with pytest.raises(SetupError):
            box.start(background=True, on_ended=calls.append)
    finally:
        box.destroy()
    assert calls == []
