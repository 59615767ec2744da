"""Who may type on a shared terminal is decided when the keys arrive, not when they are written.

No root: the Terminal (server/terminal.py) in front of a stand-in for a held
sandbox's shell whose first write blocks until the test lets it go, the way
a worker thread runs late on a loaded machine. The class tests
(tests/test_classes.py) check the same on real sandboxes.
"""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from server.terminal import Terminal


class SlowShell:
    """What Terminal needs of a held sandbox with a stdin pipe: its first write waits."""

    def __init__(self) -> None:
        self.spec = SimpleNamespace(tty=False)
        self.status = "running"
        self.written: list[bytes] = []
        self.writing = threading.Event()
        self.release = threading.Event()

    def write_stdin(self, data: bytes) -> None:
        if not self.written and not self.writing.is_set():
            self.writing.set()
            assert self.release.wait(10)
        self.written.append(data)


async def _until(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the first write never started")


def test_keys_are_judged_as_they_arrive_and_written_in_that_order():
    shell = SlowShell()
    terminal = Terminal(shell)  # type: ignore[arg-type]

    async def scenario() -> list[bool]:
        with terminal.connection("owner") as student:
            before = asyncio.create_task(terminal.type(student, b"before\n"))
            await _until(shell.writing)  # the student's line is being written, slowly
            with terminal.connection("teacher", take_over=True) as teacher:
                held = await terminal.type(student, b"while-held\n")  # dropped now, not later
                by_teacher = asyncio.create_task(terminal.type(teacher, b"teacher\n"))
                await asyncio.sleep(0.05)  # let through, queued behind the student's line
            shell.release.set()  # the teacher has let go; the slow write ends
            results = [await before, held, await by_teacher]
            results.append(await terminal.type(student, b"after\n"))
        return results

    assert asyncio.run(scenario()) == [True, False, True, True]
    assert shell.written == [b"before\n", b"teacher\n", b"after\n"]


def test_a_watcher_and_an_ended_shell_take_no_keys():
    shell = SlowShell()
    shell.writing.set()  # no slow first write here
    terminal = Terminal(shell)  # type: ignore[arg-type]

    async def scenario() -> list[bool]:
        with terminal.connection("teacher") as watcher, terminal.connection("owner") as student:
            typed = [await terminal.type(watcher, b"watcher\n"), await terminal.type(student, b"ok\n")]
            shell.status = "exited"
            typed.append(await terminal.type(student, b"too-late\n"))
            typed.append(await terminal.interrupt("owner"))
        return typed

    assert asyncio.run(scenario()) == [False, True, False, False]
    assert shell.written == [b"ok\n"]
