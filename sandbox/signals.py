"""Signals: a sandbox ended by the caller's signals, and helper threads that leave them alone.

``StopOnSignals`` is a stop hook for ``Sandbox.run``: while the sandbox
lives (and while it is torn down) the given signals end it instead of
interrupting the caller, and the caller learns which came.

Python runs signal handlers only in the main thread. A signal for the
process that the kernel hands to another thread is handled only when the
main thread next runs Python code, which can be much later if it is
blocked (a join, a lock, a long socket read). A helper thread that blocks
the asynchronous signals is never chosen, so they reach the main thread at
once. Faults (SIGSEGV, SIGBUS, ...) and SIGPIPE stay unblocked: they belong
to the thread that caused them.

Only for threads that start no processes: a child inherits its thread's
mask, and a command that cannot get SIGTERM is a leak. So the sandbox's
monitor thread (which runs callers' output callbacks) does not use it;
``Monitor.join`` waits in slices instead.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

#: Signals the kernel may give any thread of a process, and Python handles in the main one.
ASYNC_SIGNALS = frozenset({
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
    signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGCHLD,
    signal.SIGWINCH, signal.SIGIO, signal.SIGURG, signal.SIGXCPU,
})


def leave_to_main_thread() -> None:
    """Call first in a helper thread: block ASYNC_SIGNALS in it (the mask is per thread)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, ASYNC_SIGNALS)


class StopOnSignals:
    """A stop hook for ``Sandbox.run``: these signals end the sandbox; ``received`` lists them.

    The handlers are in place from before the sandbox is made until its
    teardown is over, in the main thread (where Python runs them): the
    sandbox is watched from that thread, in epoll, which any signal
    interrupts. Raising from a handler (KeyboardInterrupt) could land inside
    a threading primitive or the teardown and break it, so the handler only
    asks for the stop.
    """

    def __init__(self, *signals: int) -> None:
        self.signals = signals
        self.received: list[int] = []

    @contextlib.contextmanager
    def __call__(self, stop_now: Callable[[], None]) -> Iterator[None]:
        def handler(signum: int, _frame: object) -> None:
            self.received.append(signum)
            stop_now()

        previous = {sig: signal.signal(sig, handler) for sig in self.signals}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
