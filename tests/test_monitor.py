"""The monitor loop against real pipes and a real (plain) child process; no root needed."""

import os
import threading

from sandbox.logs import MemorySink, OutputLimiter
from sandbox.monitor import Monitor
from sandbox.process.container import ContainerProcess


def _child_and_monitor(child_writes: bytes) -> tuple[ContainerProcess, Monitor]:
    """A plain child that writes ``child_writes`` on its status pipe and exits, and a Monitor
    of it (not started)."""
    status_r, status_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(status_w, child_writes)
        os._exit(0)
    for fd in (status_w, out_w, err_w):
        os.close(fd)
    proc = ContainerProcess(pid, os.pidfd_open(pid), direct=True)
    monitor = Monitor(proc, status_r, out_r, err_r, [MemorySink()], OutputLimiter(None),
                      kill=lambda: None, sample=lambda: None, timeout=None)
    return proc, monitor


def _watch(child_writes: bytes) -> Monitor:
    proc, monitor = _child_and_monitor(child_writes)
    monitor.run_here()
    proc.reap()
    proc.close()
    return monitor


def test_a_first_process_that_ends_without_a_word_is_a_setup_error_not_a_kill():
    monitor = _watch(b"")
    assert monitor.exit_status is None
    assert monitor.start_error == {"step": "start", "detail": "the container's first process "
                                   "ended before it started the command"}


def test_a_reported_start_and_exit_are_not_an_error():
    monitor = _watch(b'{"event": "started", "pid": 2}\n{"event": "exit", "status": 768}\n')
    assert monitor.start_error is None and monitor.exit_status == 768


def test_a_loop_in_its_own_thread_calls_on_done_there_once_it_has_ended():
    proc, monitor = _child_and_monitor(b'{"event": "started", "pid": 2}\n{"event": "exit", "status": 0}\n')
    seen = []
    called = threading.Event()

    def on_done() -> None:  # where an owner tears the sandbox down: join must not deadlock
        seen.append((threading.current_thread().name, monitor.done.is_set(), monitor.join(0)))
        called.set()

    monitor.start(on_done=on_done)
    assert called.wait(10)
    assert monitor.join(10)
    proc.reap()
    proc.close()
    assert seen == [("sandbox-monitor", True, True)]
