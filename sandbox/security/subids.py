"""Host uid and gid ranges for sandboxes in user namespaces (``--userns=auto``).

The ``sandbox`` entries of /etc/subuid and /etc/subgid (``scripts/setup.sh``
adds them: ``sandbox:2147483648:268435456``, 4096 ranges) are cut into ranges
of 65536 ids, enough for any image's users (nobody is 65534). Each sandbox
leases one range for its life: root inside is the range's first id on the
host, a uid no host user has, so a process that escapes the sandbox's other
walls is nobody on the host, and no two live sandboxes share an id (nor the
per-user limits the kernel counts by uid: processes, inotify instances).

A lease is a symlink ``$SANDBOX_RUN_DIR/userns/<n>`` whose target is the
sandbox id (one atomic symlink(2), which fails if another process made it
first: no lock), removed by the sandbox's teardown; ``sandbox gc`` removes those whose sandbox is
gone. ``SANDBOX_SUBUID`` and ``SANDBOX_SUBGID`` name other files (tests).
"""

from __future__ import annotations

import errno
import os
import random

from .. import state
from ..errors import HostError
from ..plan import UserNamespace

ENTRY = "sandbox"
RANGE_SIZE = 65536
SETUP_HINT = ("add a sandbox entry to /etc/subuid and /etc/subgid, e.g. "
              "`echo sandbox:2147483648:268435456 | tee -a /etc/subuid /etc/subgid` "
              "(scripts/setup.sh does), or run with --userns=host")


def leases_dir() -> str:
    return f"{state.run_dir()}/userns"


def _entries(path: str) -> tuple[tuple[int, int], ...]:
    """(start, count) of each ``sandbox`` line of a subid file (read again when it changes)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ()
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _PARSED.get(path)
    if cached is None or cached[0] != key:
        with open(path) as f:
            lines = f.read().splitlines()
        found = []
        for line in lines:
            name, _, rest = line.strip().partition(":")
            start, _, count = rest.partition(":")
            if name == ENTRY and start.isdigit() and count.isdigit() and int(start) > 0:
                found.append((int(start), int(count)))
        cached = _PARSED[path] = (key, tuple(found))
    return cached[1]


_PARSED: dict[str, tuple[tuple, tuple[tuple[int, int], ...]]] = {}


class Ranges:
    """The whole RANGE_SIZE ranges of the sandbox entries of a subuid and a subgid file,
    paired in order: range ``n`` is the n-th of each."""

    def __init__(self, uids: tuple[tuple[int, int], ...], gids: tuple[tuple[int, int], ...]) -> None:
        self.uids = uids
        self.gids = gids
        self.count = min(_count(uids), _count(gids))

    def __getitem__(self, index: int) -> UserNamespace:
        return UserNamespace(_nth(self.uids, index), _nth(self.gids, index), RANGE_SIZE)


def _count(entries: tuple[tuple[int, int], ...]) -> int:
    return sum(count // RANGE_SIZE for _, count in entries)


def _nth(entries: tuple[tuple[int, int], ...], index: int) -> int:
    """The first id of the index-th whole range of the entries."""
    for start, count in entries:
        if index < count // RANGE_SIZE:
            return start + index * RANGE_SIZE
        index -= count // RANGE_SIZE
    raise IndexError(index)


def available() -> Ranges:
    """Every range this host gives sandboxes."""
    return Ranges(_entries(os.environ.get("SANDBOX_SUBUID", "/etc/subuid")),
                  _entries(os.environ.get("SANDBOX_SUBGID", "/etc/subgid")))


def preview() -> UserNamespace:
    """The first range, as a dry run shows it (nothing is leased); HostError if none."""
    ranges = available()
    if not ranges.count:
        raise HostError("no uid range for sandboxes in /etc/subuid and /etc/subgid",
                        hint=SETUP_HINT)
    return ranges[0]


def allocate(sandbox_id: str) -> tuple[int, UserNamespace]:
    """Lease a free range for ``sandbox_id``: (its number, the range); HostError if none."""
    ranges = available()
    if not ranges.count:
        raise HostError("no uid range for sandboxes in /etc/subuid and /etc/subgid",
                        hint=SETUP_HINT)
    directory = leases_dir()
    first = random.randrange(ranges.count)  # from anywhere: few collisions between processes
    for step in range(ranges.count):
        index = (first + step) % ranges.count
        try:
            os.symlink(sandbox_id, f"{directory}/{index}")
        except FileExistsError:
            continue
        except FileNotFoundError:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.symlink(sandbox_id, f"{directory}/{index}")  # EEXIST: a race on the first lease
        return index, ranges[index]
    raise HostError(f"all {ranges.count} uid ranges for sandboxes are in use",
                    hint="give the sandbox entry of /etc/subuid and /etc/subgid more ids, "
                    "or run `sandbox gc`")


def release(index: int, sandbox_id: str) -> None:
    """Give a lease back (only if it is still this sandbox's)."""
    path = f"{leases_dir()}/{index}"
    try:
        if os.readlink(path) == sandbox_id:
            os.unlink(path)
    except FileNotFoundError:
        pass


def collect(removed: list[str], errors: list[str]) -> None:
    """gc: remove the leases of sandboxes whose state directory is gone."""
    directory = leases_dir()
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        path = f"{directory}/{name}"
        try:
            holder = os.readlink(path)
            if not (state.sandboxes_dir() / holder).exists():
                os.unlink(path)
                removed.append(f"uid range {name}")
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                errors.append(f"uid range {name}: {exc}")
