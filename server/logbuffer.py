"""One log (a sandbox's output records, an in-process job's events) for any number of followers.

Writers are threads (a sandbox's monitor, a job's runner); followers are
coroutines on the daemon's event loop. Items are kept once, in order, and
every follower reads the same list by index: fifty followers cost fifty
indexes, not fifty copies, and a follower that resumes says where (the
index is the SSE event id). A writer wakes the waiting followers through
their loop (``call_soon_threadsafe``); nothing polls.

How much a log may hold is bounded by its writer: a sandbox's output limit,
a job's own limits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class LogBuffer(Generic[T]):
    """Items appended from any thread, read by index from coroutines; closed once at the end."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self.closed = False
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def append(self, item: T) -> None:
        with self._lock:
            self.items.append(item)
            waiters, self._waiters = self._waiters, []
        _wake(waiters)

    def close(self) -> None:
        """No more items: followers end once they have read them all."""
        with self._lock:
            self.closed = True
            waiters, self._waiters = self._waiters, []
        _wake(waiters)

    async def wait_beyond(self, count: int) -> None:
        """Return once there are more than ``count`` items, or the log is closed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if len(self.items) > count or self.closed:
                return
            self._waiters.append((loop, future))
        await future

    async def follow(self, start: int = 0, *, follow: bool = True) -> AsyncIterator[tuple[int, T]]:
        """(index, item) from ``start`` on; with ``follow`` until closed, else what there is now."""
        index = max(start, 0)
        while True:
            items = self.items
            while index < len(items):
                yield index, items[index]
                index += 1
            if not follow or self.closed:
                if index >= len(self.items):
                    return
                continue
            await self.wait_beyond(index)


def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    for loop, future in waiters:
        try:
            loop.call_soon_threadsafe(_resolve, future)
        except RuntimeError:  # that loop is closed: its follower is gone
            pass


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
