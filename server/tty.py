"""The one seam between the console's terminals and the engine's: how keys, a resize and
Ctrl-C reach the shell in a held sandbox.

Two shapes, told apart by ``ENGINE_PTY``:

- with a pty made inside the sandbox (the engine's ``SandboxSpec.tty`` and
  ``Sandbox.write_stdin``/``resize``, branch ``pty``), keystrokes go to the
  pty as they are typed, Ctrl-C is a byte, a resize reaches the shell;
- without one (until that branch lands), the command's stdin is a pipe the
  daemon holds (``Held.write_stdin``): the page edits a line itself
  (``terminal.js``'s LineEditor, the page's side of this seam) and sends it
  whole, Ctrl-C is sent as SIGINT, a resize has no effect.

Nothing else in ``server/`` knows which shape is in use; when the engine's
pty lands, only this module (and LineEditor) change.
"""

from __future__ import annotations

import dataclasses
import signal
from typing import TYPE_CHECKING, Protocol, cast

from sandbox import SandboxSpec

if TYPE_CHECKING:
    from .held import Held

#: Whether the engine makes a pty inside a sandbox: turns on by itself once SandboxSpec has
#: ``tty``.
ENGINE_PTY = "tty" in {f.name for f in dataclasses.fields(SandboxSpec)}


class EnginePty(Protocol):
    """What the engine's Sandbox offers for a command on a pty (branch ``pty``)."""

    def write_stdin(self, data: bytes, timeout: float | None = None) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...


def terminal_spec(spec: SandboxSpec) -> SandboxSpec:
    """The spec with a terminal, when the engine makes one (else unchanged: a stdin pipe)."""
    return spec.with_changes(tty=True, interactive=True) if ENGINE_PTY else spec


def needs_stdin_pipe() -> bool:
    """Whether the daemon must hold the command's stdin pipe itself (no engine pty)."""
    return not ENGINE_PTY


def mode(held: Held) -> str:
    """``pty`` (keys as typed) or ``pipe`` (whole lines), as the page is told."""
    return "pty" if ENGINE_PTY and getattr(held.spec, "tty", False) else "pipe"


def send_keys(held: Held, data: bytes) -> None:
    """Keystrokes (pty) or one edited line (pipe) to the shell."""
    if mode(held) == "pty":
        cast(EnginePty, held.sandbox).write_stdin(data)
    else:
        held.write_stdin(data)


def resize(held: Held, rows: int, cols: int) -> None:
    """The shell's window size (a pipe has none: nothing to do)."""
    if mode(held) == "pty":
        cast(EnginePty, held.sandbox).resize(rows, cols)


def interrupt(held: Held, name: str) -> None:
    """Ctrl-C's signal to the shell when keys are not bytes on a pty."""
    held.sandbox.kill(int(signal.Signals[name]))
