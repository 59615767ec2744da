"""How a test's reports come back from where it ran: a directory it writes them to.

The side that runs the test appends its events (``pytest_sandbox.events``:
each report, warning, start and end, one JSON line each) to a file in a
directory the sandbox sees read-write; the pytest process reads them back
once the sandbox has ended (``ReportChannel.read``), or gets the file's
bytes some other way (a remote worker's job artifact) and parses them
(``events.parse_events``). Where the test ran (a forked sandbox, a pytest
subprocess in a sandbox, a remote worker) does not matter to this module.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from sandbox import Mount, process_alive

from .events import EVENTS_FILE, Event, parse_events

#: Where the report directory appears inside a sandbox.
INSIDE = "/run/pytest-sandbox"
REPORTS = EVENTS_FILE


class ReportChannel:
    """A private host directory, bind-mounted read-write into one sandbox.

    Its name carries the pid of the process that made it: the first channel
    a process makes removes those of processes that are gone (a pytest
    killed with SIGKILL could not), so none pile up in /dev/shm.
    """

    def __init__(self) -> None:
        root = channel_root()
        if _SWEPT.get(root) != os.getpid():
            _SWEPT[root] = os.getpid()
            sweep(root)
        self.dir = tempfile.mkdtemp(prefix=maker_prefix(), dir=root)
        os.chmod(self.dir, 0o777)  # a sandbox's user may not be root

    @property
    def mount(self) -> Mount:
        return Mount(self.dir, INSIDE, read_only=False)

    def read(self, config) -> list[Event]:
        """The events written so far (reports, warnings, ...), in order."""
        return parse_events(config, self.data())

    def data(self) -> bytes:
        """The events file's contents so far, unread (b"" before the first event)."""
        try:
            with open(os.path.join(self.dir, REPORTS), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "ReportChannel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def channel_root() -> str | None:
    """Where report directories are made: /dev/shm, a tmpfs, when there is one.

    One is made, written three times, read and removed per test; on a disk
    file system (/tmp often is one) that is journal work. None: $TMPDIR.
    """
    return SHM if os.path.isdir(SHM) and os.access(SHM, os.W_OK) else None


SHM = "/dev/shm"
PREFIX = "pytest-sandbox-"
_SWEPT: dict[str | None, int] = {}  # channel root: the process that swept it


def maker_prefix() -> str:
    """``pytest-sandbox-PIDNS-PID-``: the start of this process's report directories' names."""
    return f"{_namespace_prefix()}{os.getpid()}-"


def _namespace_prefix() -> str:
    """A pid means something only in its pid namespace: another one sharing /dev/shm (a
    container) must not take our pids for dead ones, nor we theirs."""
    return f"{PREFIX}{os.stat('/proc/self/ns/pid').st_ino}-"


def sweep(root: str | None = None) -> list[str]:
    """Remove the report directories under ``root`` ($TMPDIR if None) whose maker is gone."""
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    ours = _namespace_prefix()
    for name in names:
        pid = name[len(ours):].partition("-")[0]
        if not (name.startswith(ours) and pid.isdigit()) or process_alive(int(pid), None):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        removed.append(name)
    return removed
