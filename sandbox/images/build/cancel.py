"""A build asked to stop (its client went away): the running RUN step killed at once.

Whoever started the build (the daemon, when the client of a streamed build
disconnects) calls ``set`` from any thread. The builder checks it between
steps and before it tags anything, and the RUN step's sandbox is killed the
moment it is set (``watch``), so the build ends within a step's teardown,
with ``BuildCancelled``, leaving what a failed build leaves: the steps it
finished in the build cache, no image tagged, its work dirs removed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ...errors import SandboxError


class BuildCancelled(SandboxError):
    """The build was stopped before its end, by whoever started it."""

    exit_status = 130


class BuildCancel:
    """Set once, from any thread; calls the hooks being watched (Sandbox kills)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._hooks: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def set(self) -> None:
        self._event.set()
        with self._lock:
            hooks = list(self._hooks.values())
        for hook in hooks:
            hook()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self, where: str) -> None:
        """BuildCancelled if the build was asked to stop."""
        if self._event.is_set():
            raise BuildCancelled(f"the build was cancelled {where}")

    @contextmanager
    def watch(self, hook: Callable[[], None]) -> Iterator[None]:
        """Call ``hook`` on ``set`` while in this block (at once if already set)."""
        ident = next(self._ids)
        with self._lock:
            self._hooks[ident] = hook
        try:
            if self._event.is_set():
                hook()
            yield
        finally:
            with self._lock:
                del self._hooks[ident]
