"""Signals in a threaded process: helper threads leave them to the main thread.

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

import signal

#: Signals the kernel may give any thread of a process, and Python handles in the main one.
ASYNC_SIGNALS = frozenset({
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
    signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGCHLD,
    signal.SIGWINCH, signal.SIGIO, signal.SIGURG, signal.SIGXCPU,
})


def leave_to_main_thread() -> None:
    """Call first in a helper thread: block ASYNC_SIGNALS in it (the mask is per thread)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, ASYNC_SIGNALS)
