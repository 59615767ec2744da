"""The one exception hierarchy of the engine.

Every error a caller can meet derives from SandboxError and says what failed,
in which step, and what to do. Lower-level errors (OSError, netlink, Redis) are
translated at the boundary with ``raise ... from exc``.

    SandboxError                    exit status 125 unless noted
    ├── SpecError                   a bad value in a SandboxSpec (field, accepted)
    ├── ImageError
    │   ├── ImageNotFound
    │   ├── BuildFileError          a Sandboxfile or its context is wrong (file, line)
    │   └── BuildStepFailed         a build step failed; exit status: the step's
    ├── HostError                   the host lacks something (cgroups, overlayfs, root)
    ├── SetupError                  a step of container setup failed (step, errno)
    │   ├── CommandNotExecutable    exit status 126
    │   └── CommandNotFound         exit status 127
    ├── NetworkError
    ├── StateError                  no such sandbox, record unreadable, busy
    └── LimitError                  a limit could not be applied
"""

from __future__ import annotations

import errno as _errno

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import Any


class SandboxError(Exception):
    """Root of every error the engine raises on purpose."""

    exit_status = 125

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class SpecError(SandboxError, ValueError):
    """A SandboxSpec field holds a value the engine cannot accept.

    The message shows the value as the user wrote it (``shown``, or a plain
    rendering of ``value``), never a Python repr of a tuple or dataclass.
    """

    def __init__(self, field: str, value: object, accepted: str, *, shown: str | None = None) -> None:
        super().__init__(f"invalid {field} {shown if shown is not None else show(value)}: "
                         f"expected {accepted}")
        self.field = field
        self.value = value
        self.accepted = accepted


def show(value: object) -> str:
    """A value as a user would have typed it: strings quoted, sequences space-separated."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(show(v) for v in value) or "(empty)"
    return str(value)


class ImageError(SandboxError):
    """An image could not be made, imported or opened."""


class ImageNotFound(ImageError, LookupError):
    """No image of that name is known."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        known_text = ", ".join(sorted(known or [])) or "none"
        super().__init__(
            f"image {name!r} not found (known: {known_text})",
            hint="import one with `sandbox image import PATH NAME`",
        )
        self.name = name


class BuildFileError(ImageError):
    """A Sandboxfile (or what it names in its context) cannot be built as written.

    ``line``/``end_line`` locate the instruction (1-based, None for the whole
    file); ``file`` is added once at the edge, by whoever read the file, so the
    parser and the instructions need not carry it.
    """

    def __init__(self, message: str, *, line: int | None = None, end_line: int | None = None,
                 file: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.end_line = end_line if end_line is not None else line
        self.file = file

    def __str__(self) -> str:
        where = self.file or "Sandboxfile"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.message}"


class BuildStepFailed(ImageError):
    """A RUN step of a build ended with a non-zero status; the build exits with it.

    ``tail`` holds the step's last output lines, for the report.
    """

    def __init__(self, message: str, *, exit_status: int, tail: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.tail = tail


class HostError(SandboxError):
    """The host lacks a kernel feature or a privilege the engine needs."""


class SetupError(SandboxError):
    """A step of container setup failed inside the child.

    ``step`` names the step (e.g. ``mount /proc``, ``workdir /nope``);
    ``errno`` is the OS error number when there was one.
    """

    def __init__(self, step: str, detail: str, errno: int | None = None) -> None:
        super().__init__(f"container setup failed at {step}: {detail}")
        self.step = step
        self.errno = errno

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> "SetupError":
        """Rebuild the error the child reported through the setup pipe."""
        step = report.get("step", "?")
        err = report.get("errno")
        detail = report.get("detail") or (_errno.errorcode.get(err, "") if err else "")
        if step == "exec":
            if err in (_errno.ENOENT, _errno.ENOTDIR):
                return CommandNotFound(report.get("command", "?"), detail, err)
            return CommandNotExecutable(report.get("command", "?"), detail, err)
        return cls(step, detail, err)


class CommandNotExecutable(SetupError):
    """The command exists but cannot be executed (permissions, format)."""

    exit_status = 126

    def __init__(self, command: str, detail: str, errno: int | None = None) -> None:
        super().__init__("exec", f"cannot execute {command!r}: {detail}", errno)
        self.command = command


class CommandNotFound(SetupError):
    """The command was not found in the container's PATH."""

    exit_status = 127

    def __init__(self, command: str, detail: str, errno: int | None = None) -> None:
        super().__init__("exec", f"command not found: {command!r}: {detail}", errno)
        self.command = command


class NetworkError(SandboxError):
    """A network could not be created, joined or removed."""


class StateError(SandboxError):
    """A sandbox record is missing, unreadable or in the wrong state."""


class LimitError(SandboxError):
    """A resource limit could not be applied on this host."""
