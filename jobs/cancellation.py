"""A cancel request for a running job, acted on the moment it is made.

The worker's lease thread (a `sandbox jobs cancel` seen in Redis) or a
Ctrl-C handler (the embedded mode) calls ``set``; the runner has registered
what ends its current step (``watch``), so the sandbox is killed at once,
without the runner's thread polling for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Cancel:
    """Set once, from any thread or a signal handler; calls what is being watched.

    It takes no lock, so ``set`` from a signal handler cannot deadlock with
    the thread it interrupted. A hook may be called twice (a ``set`` racing a
    ``watch``); the hooks given here (Sandbox.kill) are idempotent.
    """

    def __init__(self) -> None:
        self._set = False
        self._hooks: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()

    def set(self) -> None:
        self._set = True
        for hook in list(self._hooks.values()):
            hook()

    def is_set(self) -> bool:
        return self._set

    @contextmanager
    def watch(self, hook: Callable[[], None]) -> Iterator[None]:
        """Call ``hook`` on ``set`` while in this block (at once if already set)."""
        ident = next(self._ids)
        self._hooks[ident] = hook
        try:
            if self._set:
                hook()
            yield
        finally:
            del self._hooks[ident]
