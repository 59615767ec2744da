"""The interface every cgroup backend keeps."""

from __future__ import annotations

import errno
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..errors import LimitError
from ..spec import Limits

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
    cpu_user: float | None = None
    cpu_system: float | None = None
    cpu_total: float | None = None
    pids_peak: int | None = None
    oom_kills: int = 0
    pids_limited: int = 0


class Cgroup(ABC):
    """The cgroup(s) of one sandbox: made, limited, joined, killed, removed."""

    def __init__(self, paths: list[str], shared: list[str] | None = None) -> None:
        self.paths = paths  # the sandbox's own directories: made, read and removed
        self.shared = shared or []  # joined only, never removed: v1's devices parent

    @property
    def procs_files(self) -> list[str]:
        """Files the container's first process writes ``0`` to, to join."""
        return [os.path.join(p, "cgroup.procs") for p in self.paths + self.shared]

    def pids(self) -> list[int]:
        """Every process in the sandbox's own cgroup(s)."""
        found: set[int] = set()
        for path in self.paths:
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    found.update(int(x) for x in f.read().split())
            except FileNotFoundError:
                continue
        return sorted(found)

    def make(self, limits: Limits) -> None:
        """Make the directories and write the limits; nothing is left if that fails."""
        try:
            for path in self.paths:
                os.mkdir(path)
            self.apply(limits)
        except BaseException:
            self.remove()
            raise

    @abstractmethod
    def apply(self, limits: Limits) -> None:
        """Write the limits (before any process joins)."""

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL every process, without letting any escape by forking."""

    @abstractmethod
    def stats(self) -> CgroupStats:
        """Usage and limit events so far."""

    def sample(self) -> None:
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
                    time.sleep(0.002)


class CgroupHierarchy(ABC):
    """The host's cgroup layout: makes and finds sandbox cgroups."""

    version: int

    @abstractmethod
    def plan(self, sandbox_id: str, limits: Limits) -> Cgroup:
        """The sandbox's cgroup(s), named but not made yet (``Cgroup.make`` makes them).

        Knowing the paths first lets a spare be handed its plan (which names
        the files to join) while the directories are still being made.
        """

    def create(self, sandbox_id: str, limits: Limits) -> Cgroup:
        """Make the sandbox's cgroup(s) with limits applied; nothing joins yet."""
        cgroup = self.plan(sandbox_id, limits)
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
        """Remove the parent directories if empty (a test session's own parent)."""
        for path in self.parent_paths():
            try:
                os.rmdir(path)
            except OSError:
                pass

    @abstractmethod
    def describe(self) -> str:
        """One line for `sandbox doctor`."""


def write(path: str, value: str | int) -> None:
    """Write one value to a cgroup file, naming the file when the kernel refuses."""
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as exc:
        raise LimitError(f"cannot write {value!r} to {path}: {exc.strerror}") from exc


def read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


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


def make_parent(path: str) -> None:
    os.makedirs(path, exist_ok=True)
