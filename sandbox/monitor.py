"""The loop that watches one running sandbox.

One loop per sandbox, in a thread of its own (``start``) or in the caller's
(``run_here``: run(), the CLI, the jobs runner, the pytest plugin), reads its
STDOUT and STDERR pipes (never letting the command block on a full pipe),
the status pipe from its init, and the init's pidfd, which becomes readable
only when the init and, with it, the whole pid namespace are gone. It feeds
output through the OutputLimiter to the sinks, writes stdin if there is any,
and enforces the wall-clock deadline by killing the whole cgroup. A Python
target forked into a held container is our own child: its pidfd is watched
too, and its wait status is the exit status.

Signals: Python runs handlers in the main thread only. In the caller's
thread the loop waits in epoll, which any signal interrupts; a caller that
waits for a loop in its own thread waits in slices (``join``), so a signal
the kernel gave the loop's thread is handled within WAKE_INTERVAL.
"""

from __future__ import annotations

import errno
import os
import selectors
import threading
import time
from collections.abc import Callable

from .logs import LogRecord, OutputLimiter, Sink
from .process.container import ContainerProcess
from .process.handshake import read_events

CHUNK = 65536
SAMPLE_INTERVAL = 0.25
#: How often a waiting main thread wakes to run pending signal handlers (seconds).
WAKE_INTERVAL = 0.1


class Monitor:
    """Runs in its own thread from start() until the sandbox has ended."""

    def __init__(self, proc: ContainerProcess, status_r: int, stdout_r: int, stderr_r: int,
                 sinks: list[Sink], limiter: OutputLimiter, *, kill: Callable[[], None],
                 sample: Callable[[], None], timeout: float | None,
                 stdin: tuple[int, bytes] | None = None,
                 on_exit: Callable[[], None] = lambda: None, terminal: int = -1,
                 idle_timeout: float | None = None) -> None:
        self.proc = proc
        self.streams = {stdout_r: "stdout", stderr_r: "stderr"}
        if terminal >= 0:  # the pty's master: what the command writes on its terminal
            self.streams[terminal] = "stdout"
        self.status_r = status_r
        self.sinks = sinks
        self.limiter = limiter
        self._kill = kill
        self._sample = sample
        self._on_exit = on_exit
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        #: time.monotonic() of the last output read or input noted (``note_input``).
        self.last_activity = time.monotonic()
        self.stdin = stdin
        self.started = threading.Event()
        self.done = threading.Event()
        self.start_error: dict | None = None
        self.exit_status: int | None = None
        self.trace: list | None = None
        self.command_started_at: float | None = None
        #: The command's pid, as its first process sees it (the host's, for an exec).
        self.command_pid: int | None = None
        self.ended_at: float | None = None
        self.timed_out = False
        self.idle_timed_out = False
        self.output_killed = False
        self.killed = False
        self.sink_error: BaseException | None = None
        self._status_buf = b""
        self._open = {status_r, *self.streams, *([stdin[0]] if stdin and stdin[0] >= 0 else [])}
        self._thread: threading.Thread | None = None  # made by start() only: run_here needs none
        self._on_done: Callable[[], None] | None = None

    def start(self, on_done: Callable[[], None] | None = None) -> None:
        """Run the loop in a thread of its own; ``on_done`` runs there once it has ended.

        ``on_done`` saves an owner that must act on the end (tear the sandbox
        down, keep its result) a thread of its own: in a busy process a new
        thread waits for the GIL before it even reports that it started.
        """
        self._on_done = on_done
        thread = threading.Thread(target=self._run, name="sandbox-monitor", daemon=True)
        thread.start()
        self._thread = thread

    @property
    def running_in_background(self) -> bool:
        return self._thread is not None

    def run_here(self) -> None:
        """Run the loop in the calling thread, to the end.

        An exception raised into this thread meanwhile (a signal handler's:
        KeyboardInterrupt, pytest-timeout) kills the sandbox and propagates.
        """
        if not self.done.is_set():
            self._run(reraise=True)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the loop's thread to end; False if ``timeout`` passed first.

        In slices: Python runs signal handlers only in the main thread, and a
        signal the kernel gave the monitor's thread waits until the main
        thread wakes. A join without a timeout would hold it indefinitely.
        """
        if self._thread is None or self._thread is threading.current_thread():
            return self.done.is_set()  # no thread, or asked by ``on_done`` in the loop's own
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():
            left = WAKE_INTERVAL if deadline is None else min(WAKE_INTERVAL, deadline - time.monotonic())
            if left <= 0:
                break
            self._thread.join(left)
        return not self._thread.is_alive()

    def wait_started(self) -> None:
        """Block until the command has started or the sandbox failed (in slices, as join)."""
        while not self.started.wait(WAKE_INTERVAL):
            pass

    def note_input(self) -> None:
        """Input went to the command: it is not idle (callable from any thread)."""
        self.last_activity = time.monotonic()

    def kill(self) -> None:
        """End the sandbox now (idempotent)."""
        if not self.killed:
            self.killed = True
            self._kill()

    def _run(self, reraise: bool = False) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.kill()
            self._close_all()
            if reraise:
                raise
            self.sink_error = self.sink_error or exc
        finally:
            self.ended_at = self.ended_at or time.time()
            if self.command_started_at is None and self.start_error is None and not self.killed:
                # it could not even report why (its status pipe was not set up yet)
                self.start_error = {"step": "start", "detail": "the container's first process "
                                    "ended before it started the command"}
            self.started.set()
            self.done.set()
        if self._on_done is not None:
            self._on_done()

    def _close(self, fd: int) -> None:
        self._open.discard(fd)
        os.close(fd)

    def _close_all(self) -> None:
        """Close the pipes a loop that ended early left open."""
        for fd in list(self._open):
            self._close(fd)

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        for fd in (*self.streams, self.status_r):
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        sel.register(self.proc.pidfd, selectors.EVENT_READ)
        target_fd = self.proc.target.pidfd if self.proc.target else -1
        if target_fd >= 0:
            sel.register(target_fd, selectors.EVENT_READ)
        stdin_fd, stdin_data = self.stdin or (-1, b"")
        if stdin_fd >= 0:
            os.set_blocking(stdin_fd, False)
            sel.register(stdin_fd, selectors.EVENT_WRITE)
        open_fds = len(self.streams) + 1
        init_gone = False
        deadline: float | None = None
        next_sample = time.monotonic() + SAMPLE_INTERVAL
        target_pending = target_fd >= 0
        while open_fds or not init_gone or target_pending:
            if deadline is None and self.timeout and self.command_started_at:
                deadline = time.monotonic() + self.timeout
            now = time.monotonic()
            if deadline is not None and now >= deadline and not self.killed:
                self.timed_out = True
                self.kill()
            idle_deadline = self._idle_deadline()
            if idle_deadline is not None and now >= idle_deadline and not self.killed:
                self.idle_timed_out = True
                self.kill()
            wait = min(x for x in (deadline, next_sample, idle_deadline) if x is not None) - now
            for key, _ in sel.select(max(wait, 0) if not self.killed else 0.05):
                fd = key.fd
                if fd == self.proc.pidfd:
                    sel.unregister(fd)
                    init_gone = True
                    self.ended_at = self.ended_at or time.time()
                elif fd == target_fd:
                    sel.unregister(fd)
                    target_pending = False
                    self.ended_at = time.time()
                    self.exit_status = self.proc.reap_target()  # the init then exits
                    self._on_exit()
                elif fd == stdin_fd:
                    stdin_data = self._feed(sel, stdin_fd, stdin_data)
                elif not self._read(fd):
                    sel.unregister(fd)
                    self._close(fd)
                    open_fds -= 1
            if time.monotonic() >= next_sample:
                self._sample()
                next_sample = time.monotonic() + SAMPLE_INTERVAL
        if stdin_fd >= 0 and stdin_fd in sel.get_map():
            sel.unregister(stdin_fd)
            self._close(stdin_fd)
        sel.close()

    def _idle_deadline(self) -> float | None:
        """When the command counts as idle (no output, no input), once it has started."""
        if not self.idle_timeout or self.command_started_at is None:
            return None
        return self.last_activity + self.idle_timeout

    def _feed(self, sel: selectors.BaseSelector, fd: int, data: bytes) -> bytes:
        try:
            written = os.write(fd, data[:CHUNK]) if data else 0
        except (BrokenPipeError, BlockingIOError) as exc:
            written = 0 if isinstance(exc, BlockingIOError) else len(data)
        data = data[written:]
        if not data:
            sel.unregister(fd)
            self._close(fd)
        return data

    def _read(self, fd: int) -> bool:
        """Read what is there; False at EOF."""
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        except OSError as exc:  # a pty's master once no process holds its peer: EIO
            if exc.errno != errno.EIO:
                raise
            return False
        if not data:
            return False
        if fd == self.status_r:
            self._on_status(data)
            return True
        self.last_activity = time.monotonic()
        kept = self.limiter.admit(self.streams[fd], data)
        if self.limiter.exhausted and not self.output_killed:
            self.output_killed = True  # a limit like the others: kill, then read to EOF
            self.kill()
        if kept:
            record = LogRecord(self.streams[fd], time.time(), kept)
            for sink in list(self.sinks):
                try:
                    sink.write(record)
                except Exception as exc:
                    self.sink_error = self.sink_error or exc
                    self.sinks.remove(sink)
                    self.kill()
        return True

    def _on_status(self, data: bytes) -> None:
        events, self._status_buf = read_events(self._status_buf + data)
        for event in events:
            if event.kind == "started":
                self.command_started_at = time.time()
                self.command_pid = event.data.get("pid")
                self.trace = event.data.get("trace")
                self.started.set()
            elif event.kind == "error":
                self.start_error = event.data
                self.started.set()
            elif event.kind == "exit":
                self.exit_status = event.data["status"]
                self._on_exit()  # while the kernel still dismantles the namespaces
