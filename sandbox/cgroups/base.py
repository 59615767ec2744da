"""The interface every cgroup backend keeps.

A sandbox may be given a subtree of its own (``delegate``): one directory
more under its cgroup in each hierarchy (``DELEGATED``), shown inside at
/sys/fs/cgroup, where its processes make cgroups of their own for their
children, under the sandbox's limits (a remote batch gives each test one).
Its own cgroup's files (its limits) stay out of its reach. The sandbox's
teardown removes whatever it made there.

The parent directories (one per hierarchy, SANDBOX_CGROUP_PARENT) are made
when a sandbox needs them and removed when no sandbox on the host does: at
the exit of each process that used them, and by ``sandbox gc``. Processes
share them, so they agree through flock(2) on the first parent directory: a
sandbox holds a shared lock from ``plan()`` (which makes the parents) until
its cgroup is removed; ``remove_parents`` takes it exclusively, without
waiting, and leaves everything alone when it cannot. A process that waited
for its shared lock while they were removed finds the locked directory gone
and makes them again.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..errors import LimitError
from ..spec import Limits

#: The delegated subtree under a delegating sandbox's cgroup, in each hierarchy.
DELEGATED = "delegated"
#: Where a delegating sandbox's processes find it, and the variable that says how it is laid out
#: ("v2:/sys/fs/cgroup", or "v1:/sys/fs/cgroup" with a directory per hierarchy there, named by
#: its controllers joined with commas: ``delegated_cgroup``).
DELEGATED_MOUNT = "/sys/fs/cgroup"
DELEGATED_ENV = "SANDBOX_CGROUP"
#: The files of a delegated directory its owner gets, when the sandbox's root is not the
#: host's (a user namespace): systemd's list for a delegated unit.
DELEGATED_FILES = ("", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "tasks")


def parent_name() -> str:
    """The parent of every sandbox cgroup, in each hierarchy (SANDBOX_CGROUP_PARENT).

    A test session or a second installation uses its own parent, so neither
    mistakes the other's cgroups for its own leftovers.
    """
    return os.environ.get("SANDBOX_CGROUP_PARENT", "sandbox")


@dataclass(frozen=True)
class CgroupStats:
    """Accounting read from the cgroup at the end of a run (None: not known)."""

    peak_memory: int | None = None
    #: memory in use now (a live sandbox's; the daemon's stats and a class's page show it)
    memory_current: int | None = None
    cpu_user: float | None = None
    cpu_system: float | None = None
    cpu_total: float | None = None
    pids_peak: int | None = None
    oom_kills: int = 0
    pids_limited: int = 0


class Cgroup(ABC):
    """The cgroup(s) of one sandbox: made, limited, joined, killed, removed."""

    version = 0  # the backend's

    def __init__(self, paths: list[str], shared: list[str] | None = None) -> None:
        self.paths = paths  # the sandbox's own directories: made, read and removed
        self.shared = shared or []  # joined only, never removed: v1's devices parent
        self.parents_lock = -1  # held from plan() until removed: the parents stay
        self.live: set | None = None  # the set of live cgroups it is in (see _LiveLocks)
        #: A delegating sandbox's subtree: (host directory, its name under DELEGATED_MOUNT).
        self.delegated: list[tuple[str, str]] = []

    def release_parents(self) -> None:
        """Let ``remove_parents`` remove the parents again (idempotent)."""
        with _LiveLocks.guard:
            if self.parents_lock >= 0:
                os.close(self.parents_lock)
                self.parents_lock = -1
            if self.live is not None:
                self.live.discard(self)
                self.live = None

    @property
    def procs_files(self) -> list[str]:
        """Files the container's first process writes ``0`` to, to join."""
        return [os.path.join(p, "cgroup.procs") for p in self.paths + self.shared]

    @property
    def delegated_env(self) -> str:
        """The value of DELEGATED_ENV in a delegating sandbox (``delegated_cgroup`` reads it)."""
        return f"v{self.version}:{DELEGATED_MOUNT}"

    def pids(self) -> list[int]:
        """Every process in the sandbox's own cgroup(s), those below them included."""
        found: set[int] = set()
        for path in self.paths:
            for directory in [path, *_below(path)]:
                try:
                    with open(os.path.join(directory, "cgroup.procs")) as f:
                        found.update(int(x) for x in f.read().split())
                except OSError as exc:
                    # gone, or being removed by its owner's teardown meanwhile (ENODEV: the
                    # kernel took it between our open and read): nothing runs in it any more
                    if exc.errno not in (errno.ENOENT, errno.ENODEV):
                        raise
        return sorted(found)

    def gone(self) -> bool:
        """True once none of its directories is left (its owner's teardown removed them)."""
        return not any(os.path.isdir(p) for p in self.paths)

    def make(self, limits: Limits, owner: tuple[int, int] | None = None) -> None:
        """Make the directories and write the limits, then the delegated subtree (its
        directory and files given to ``owner``, host uid and gid, when not None);
        nothing is left if that fails."""
        try:
            for path in self.paths:
                os.mkdir(path)
            self.apply(limits)
            if self.delegated:
                self._delegate(owner)
        except BaseException:
            self.remove()
            raise

    def _delegate(self, owner: tuple[int, int] | None) -> None:
        """Make the delegated directories, given to ``owner`` (a backend adds its part)."""
        for directory, _ in self.delegated:
            os.mkdir(directory)
            if owner is not None:
                give(directory, owner)

    @abstractmethod
    def apply(self, limits: Limits) -> None:
        """Write the limits (before any process joins)."""

    def kill(self) -> None:
        """SIGKILL every process, without letting any escape by forking. A cgroup its owner's
        teardown removed meanwhile (`sandbox rm -f` racing the sandbox's own end) has nothing
        left to kill: that is not an error."""
        try:
            self._kill()
        except LimitError:
            if not self.gone():
                raise

    @abstractmethod
    def _kill(self) -> None:
        """``kill`` on this backend's files."""

    @abstractmethod
    def stats(self) -> CgroupStats:
        """Usage and limit events so far."""

    def sample(self) -> None:  # noqa: B027 - a hook a backend may leave empty
        """Called now and then while running, for kernels that lack a peak file."""

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the directories, killing what is left; waits out dying tasks."""
        deadline = time.monotonic() + timeout
        for path in reversed(self.paths):
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise LimitError(f"cannot remove cgroup {path}: {exc.strerror}") from exc
                    self.kill()
                    _remove_below(path)  # a delegated subtree's cgroups, deepest first
                    time.sleep(0.002)
        self.release_parents()


class _LiveLocks:
    """This process's live sandbox cgroups, by their first parent, for ``plan``.

    While one of them holds its shared lock on the parents, the parents are
    ready and cannot be removed: the next plan takes a copy of that lock
    (the same open file, so the lock lasts until the last copy is closed)
    instead of locking and checking every parent again. A process running
    sandboxes back to back (the pytest plugin prepares the next one while
    the current one runs) saves that per sandbox.
    """

    guard = threading.Lock()  # one lock for all: a copy is never taken of a closing fd

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_parent: dict[str, set] = {}

    def share(self, first_parent: str) -> int:
        """A copy of a live cgroup's lock on ``first_parent``, or -1 if none is live."""
        with self.guard:
            if self.pid != os.getpid():  # a forked copy: those cgroups are not ours
                self.pid, self.by_parent = os.getpid(), {}
            for cgroup in self.by_parent.get(first_parent, ()):
                if cgroup.parents_lock >= 0:
                    return fcntl.fcntl(cgroup.parents_lock, fcntl.F_DUPFD_CLOEXEC, 0)
        return -1

    def add(self, first_parent: str, cgroup: "Cgroup") -> None:
        with self.guard:
            live = self.by_parent.setdefault(first_parent, set())
            live.add(cgroup)
            cgroup.live = live


class CgroupHierarchy(ABC):
    """The host's cgroup layout: makes and finds sandbox cgroups."""

    version: int
    #: True when the sandboxes' device access is restricted (then they keep CAP_MKNOD)
    controls_devices = False
    _remove_at_exit = False

    _live: _LiveLocks | None = None

    @property
    def _live_locks(self) -> _LiveLocks:
        if self._live is None:
            self._live = _LiveLocks()
        return self._live

    def plan(self, sandbox_id: str, limits: Limits, delegate: bool = False) -> Cgroup:
        """The sandbox's cgroup(s), named but not made yet (``Cgroup.make`` makes them).

        Knowing the paths first lets a spare be handed its plan (which names
        the files to join) while the directories are still being made. The
        parents exist from here until the cgroup's ``remove`` or
        ``release_parents``.
        """
        first = self.parent_paths()[0]
        lock = self._live_locks.share(first)
        if lock < 0:
            lock = self._lock_parents()
        try:
            cgroup = self._plan(sandbox_id, limits, delegate)
        except BaseException:
            os.close(lock)
            raise
        cgroup.parents_lock = lock
        self._live_locks.add(first, cgroup)
        if not self._remove_at_exit:
            self._remove_at_exit = True
            atexit.register(self.remove_parents)
        return cgroup

    def name(self, sandbox_id: str, limits: Limits, delegate: bool = False) -> Cgroup:
        """The cgroup(s) a sandbox would get, named only: nothing is made or locked
        (for ``sandbox run --dry-run``)."""
        return self._plan(sandbox_id, limits, delegate)

    @abstractmethod
    def _plan(self, sandbox_id: str, limits: Limits, delegate: bool) -> Cgroup:
        """``plan`` with the parents locked: make any that is missing, name the cgroup
        (and its delegated subtree, with ``delegate``)."""

    @abstractmethod
    def _parents_ready(self) -> bool:
        """True when every parent exists, set up for children (checked under the lock)."""

    @abstractmethod
    def _prepare_parents(self) -> None:
        """Make and set up every parent (under the exclusive lock: nobody sees half of it)."""

    def _lock_parents(self) -> int:
        """A shared flock on the first parent, taken once every parent is ready.

        Parents are only made under the exclusive lock, so a sandbox never
        joins one whose device rules are half written.
        """
        first = self.parent_paths()[0]
        while True:
            fd = _open_dir(first)
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _still_there(first, fd) and self._parents_ready():
                return fd
            os.close(fd)
            self._prepare_parents_exclusively(first)

    def _prepare_parents_exclusively(self, first: str) -> None:
        """Make the parents under the exclusive lock, unless someone makes them meanwhile.

        Whoever made them keeps a shared lock for as long as its sandbox runs
        (another thread of this process, too), so waiting for the exclusive
        lock alone would wait for that sandbox's end.
        """
        fd = _open_dir(first)
        try:
            deadline = time.monotonic() + PREPARE_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if _still_there(first, fd) and self._parents_ready():
                        return  # made by whoever holds the lock: share it
                    if time.monotonic() > deadline:
                        raise LimitError(f"cannot set up the cgroup parents ({first}): running "
                                         f"sandboxes hold them, yet one is missing") from None
                    time.sleep(0.005)
            if _still_there(first, fd):
                self._prepare_parents()
        finally:
            os.close(fd)

    def create(self, sandbox_id: str, limits: Limits, delegate: bool = False) -> Cgroup:
        """Make the sandbox's cgroup(s) with limits applied; nothing joins yet."""
        cgroup = self.plan(sandbox_id, limits, delegate)
        cgroup.make(limits)
        return cgroup

    @abstractmethod
    def open(self, paths: list[str]) -> Cgroup:
        """The cgroup at paths recorded earlier (for gc and rm)."""

    @abstractmethod
    def leftovers(self) -> list[str]:
        """Every sandbox cgroup directory that exists now (for the leak check)."""

    @abstractmethod
    def parent_paths(self) -> list[str]:
        """The parent directory of sandbox cgroups in each hierarchy."""

    def remove_parents(self) -> None:
        """Remove the parent directories unless a sandbox on this host uses them.

        Runs at the exit of each process that planned a cgroup, and in
        ``sandbox gc``. Never waits: when a sandbox holds the parents (or a
        cgroup under one is not empty), they stay for whoever ends last.
        """
        paths = self.parent_paths()
        if not any(os.path.isdir(p) for p in paths):
            return
        try:
            fd = _open_dir(paths[0])
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return  # in use
        try:
            for path in [*paths[1:], paths[0]]:  # the locked one last
                try:
                    os.rmdir(path)
                except OSError:
                    pass
        finally:
            os.close(fd)

    @abstractmethod
    def describe(self) -> str:
        """One line for `sandbox doctor`."""


#: How long making the parents waits for others to finish making or removing them.
PREPARE_WAIT = 10.0


def _open_dir(path: str) -> int:
    """An fd for directory ``path``, made first if it is missing."""
    while True:
        os.makedirs(path, exist_ok=True)
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # removed between the two


def _still_there(path: str, fd: int) -> bool:
    """True when ``fd`` (locked after a wait) is still the directory at ``path``."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _below(path: str) -> list[str]:
    """The cgroups under ``path`` (a delegating sandbox's), deepest first; none for most."""
    return [directory for directory, _, _ in os.walk(path, topdown=False) if directory != path]


def _remove_below(path: str) -> None:
    """rmdir every cgroup under ``path``, deepest first; one still busy stays (retried)."""
    for directory in _below(path):
        try:
            os.rmdir(directory)
        except OSError:
            pass


def give(directory: str, owner: tuple[int, int]) -> None:
    """A delegated directory and the files that move processes to ``owner`` (uid, gid)."""
    for name in DELEGATED_FILES:
        try:
            os.chown(os.path.join(directory, name), *owner)
        except FileNotFoundError:
            pass


def write(path: str, value: str | int) -> None:
    """Write one value to a cgroup file, naming the file when the kernel refuses."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # as open(path, "w")
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise LimitError(f"cannot write {value!r} to {path}: {exc.strerror}") from exc


def read(path: str) -> str | None:
    """A cgroup file's text; None if it cannot be read. Without a text file
    object: the stats of every sandbox read seven of these."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def read_int(path: str) -> int | None:
    text = read(path)
    if text is None:
        return None
    text = text.strip()
    return None if text in ("", "max") else int(text)


def read_keyed(path: str) -> dict[str, int]:
    """``key value`` lines (memory.events, cpu.stat, oom_control) as a dict."""
    text = read(path) or ""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out

