"""A held sandbox's terminal, shared by everyone looking at it: who is connected, who types.

The browser's terminal (xterm.js) talks to it through a WebSocket that
carries raw bytes, as Docker's attach does with a tty: the daemon sends the
output (first the last REPLAY_BYTES of it, so a page that reconnects shows
the screen again), the page sends keystrokes. What is not bytes goes beside
it over HTTP: a resize, a signal, who is connected.

How keys, a resize and Ctrl-C reach the shell (a pty or a stdin pipe) is
``tty``'s job, the one seam to the engine's terminals.

Roles: the sandbox's ``owner`` (for a class seat, the student) types;
someone else may ``take over`` the keyboard (the teacher), and the owner's
keys are dropped until they let go. Watchers only read.

Who may type is decided on the event loop, as each message is taken from its
WebSocket: the take-over and its end happen there too, so a key is judged
by who held the keyboard when it arrived, never by who holds it when a
worker thread gets to it (under load a thread may run long after the
teacher let go). The keys let through are then written one message at a
time, in the order they were let through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from sandbox import StateError

from . import tty

if TYPE_CHECKING:
    from .classes.recording import Recorder
    from .held import Held

#: How much of the output a (re)connecting page is sent first.
REPLAY_BYTES = 256 << 10
#: Most output records sent in one WebSocket message (a flood is sent in large messages).
BATCH = 512
#: WebSocket close codes the pages act on: the sandbox ended, or was replaced by a reset.
CLOSE_ENDED = 4000
CLOSE_RESET = 4001


class Connection:
    """One page connected to a terminal, in a role (owner, teacher)."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.open = True


class Terminal:
    """One held sandbox's screen and keyboard; made once per sandbox (``of``)."""

    def __init__(self, held: Held, recorder: Recorder | None = None) -> None:
        self.held = held
        self.recorder = recorder
        self.connected: dict[str, int] = {}
        self._holder: Connection | None = None  # the page that took the keyboard over
        self.size = (24, 80)
        self.replaced = False  # a reset made another sandbox for the same seat
        self._writing = asyncio.Lock()  # FIFO: keys reach the shell in the order let through

    @classmethod
    def of(cls, held: Held) -> "Terminal":
        if held.terminal is None:
            held.terminal = cls(held)
        return held.terminal

    @property
    def mode(self) -> str:
        return tty.mode(self.held)

    def info(self) -> dict[str, Any]:
        return {"id": self.held.id, "mode": self.mode, "status": self.held.status,
                "connected": dict(self.connected), "holder": self.holder,
                "rows": self.size[0], "cols": self.size[1]}

    @contextlib.contextmanager
    def connection(self, role: str, *, take_over: bool = False) -> Iterator[Connection]:
        """Count a page as connected while it is; ``take_over``: its keys are the ones typed
        (everyone else's are dropped) until it closes."""
        conn = Connection(role)
        self.connected[role] = self.connected.get(role, 0) + 1
        previous = self._holder
        if take_over:
            self._holder = conn
        try:
            yield conn
        finally:
            self.connected[role] -= 1
            if not self.connected[role]:
                del self.connected[role]
            if self._holder is conn:
                self._holder = previous if previous is not None and previous.open else None
            conn.open = False

    @property
    def holder(self) -> str | None:
        """The role of whoever took the keyboard over (None: the owner types)."""
        return self._holder.role if self._holder is not None else None

    def may_type(self, role: str, conn: Connection | None = None) -> bool:
        if self._holder is not None:
            return conn is self._holder if conn is not None else role == self._holder.role
        return role == "owner"

    async def type(self, conn: Connection, data: bytes) -> bool:
        """Pass keystrokes (or, without a pty, a line) on; False when ``conn`` may not type now.

        Called on the event loop as the message arrives: the decision is taken
        here, before any await; the write (which may block on a full pty) runs
        in a worker thread, after the keys let through before these.
        """
        if not self.may_type(conn.role, conn):
            return False
        async with self._writing:
            return await run_in_threadpool(self._write_keys, data)

    def _write_keys(self, data: bytes) -> bool:
        if self.held.status != "running":
            return False
        tty.send_keys(self.held, data)
        if self.recorder is not None:
            self.recorder.input(data)
        return True

    def resize(self, rows: int, cols: int) -> None:
        if not (0 < rows < 1000 and 0 < cols < 1000):
            raise StateError(f"invalid terminal size {rows}x{cols}: expected rows and columns "
                             "from 1 to 999")
        self.size = (rows, cols)
        tty.resize(self.held, rows, cols)
        if self.recorder is not None:
            self.recorder.resize(rows, cols)

    async def interrupt(self, role: str, name: str = "SIGINT") -> bool:
        """Ctrl-C without a pty: the signal to the shell (with one, Ctrl-C is a byte); decided,
        as keys are, on the event loop when the request arrives."""
        if not self.may_type(role):
            return False
        async with self._writing:
            return await run_in_threadpool(self._signal, name)

    def _signal(self, name: str) -> bool:
        if self.held.status != "running":
            return False
        tty.interrupt(self.held, name)
        return True

    def replay_start(self) -> int:
        """The index of the first output record within the last REPLAY_BYTES."""
        items = self.held.logs.items
        index, size = len(items), 0
        while index > 0 and size + len(items[index - 1].data) <= REPLAY_BYTES:
            index -= 1
            size += len(items[index].data)
        return index

    def end_reason(self) -> tuple[int, str]:
        if self.replaced:
            return CLOSE_RESET, "reset: a new sandbox is ready"
        result = self.held.result
        code = result.exit_code if result is not None else "?"
        return CLOSE_ENDED, f"ended (exit status {code})"


async def serve(websocket: WebSocket, terminal: Terminal, role: str, *, write: bool,
                take_over: bool = False) -> None:
    """Run one page's connection: output out (replayed tail first), keystrokes in, until the
    sandbox ends (the page is told how) or the page goes (its keyboard is let go at once)."""
    await websocket.accept()
    with terminal.connection(role, take_over=take_over) as conn:
        sender = asyncio.create_task(_send_until_end(websocket, terminal))
        reader = asyncio.create_task(_keys(websocket, terminal, conn if write else None))
        try:
            await asyncio.wait((sender, reader), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, reader):
                task.cancel()
            await asyncio.gather(sender, reader, return_exceptions=True)


async def _send_until_end(websocket: WebSocket, terminal: Terminal) -> None:
    try:
        await _send_output(websocket, terminal)
        await terminal.held.wait_ended()
        code, reason = terminal.end_reason()
        await websocket.close(code=code, reason=reason)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


async def _send_output(websocket: WebSocket, terminal: Terminal) -> None:
    logs = terminal.held.logs
    index = terminal.replay_start()
    while True:
        items = logs.items
        if index < len(items):
            batch = items[index:index + BATCH]
            index += len(batch)
            await websocket.send_bytes(b"".join(r.data for r in batch))
            continue
        if logs.closed:
            return
        await logs.wait_beyond(index)


async def _keys(websocket: WebSocket, terminal: Terminal, conn: Connection | None) -> None:
    """Keystrokes from the page (binary or text messages alike; dropped without ``conn``),
    until it closes."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None and message.get("text") is not None:
                data = message["text"].encode()
            if data and conn is not None:
                try:
                    await terminal.type(conn, data)
                except (OSError, StateError):  # the command ended: the sender says how
                    pass
    except (WebSocketDisconnect, RuntimeError):
        return
