"""Host uid and gid ranges for sandboxes in user namespaces (``--userns=auto``).

The ``sandbox`` entries of /etc/subuid and /etc/subgid (``scripts/setup.sh``
adds them: ``sandbox:2147483648:268435456``, 4096 ranges) are cut into ranges
of 65536 ids, enough for any image's users (nobody is 65534). Each sandbox
leases one range for its life: root inside is the range's first id on the
host, a uid no host user has, so a process that escapes the sandbox's other
walls is nobody on the host, and no two live sandboxes share an id (nor the
per-user limits the kernel counts by uid: processes, inotify instances).

A lease is a file ``$SANDBOX_RUN_DIR/userns/<n>`` holding the sandbox id,
linked into place whole (no lock: link(2) fails if another process made it first), removed
by the sandbox's teardown; ``sandbox gc`` removes those whose sandbox is
gone. ``SANDBOX_SUBUID`` and ``SANDBOX_SUBGID`` name other files (tests).
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

from .. import state
from ..errors import HostError
from ..plan import UserNamespace

ENTRY = "sandbox"
RANGE_SIZE = 65536
SETUP_HINT = ("add a sandbox entry to /etc/subuid and /etc/subgid, e.g. "
              "`echo sandbox:2147483648:268435456 | tee -a /etc/subuid /etc/subgid` "
              "(scripts/setup.sh does), or run with --userns=host")


def leases_dir() -> Path:
    return state.run_dir() / "userns"


def _entries(path: str) -> list[tuple[int, int]]:
    """(start, count) of each ``sandbox`` line of a subid file."""
    found = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        name, _, rest = line.strip().partition(":")
        start, _, count = rest.partition(":")
        if name == ENTRY and start.isdigit() and count.isdigit() and int(start) > 0:
            found.append((int(start), int(count)))
    return found


def _ranges(entries: list[tuple[int, int]]) -> list[int]:
    """The first id of every whole RANGE_SIZE range in the entries."""
    return [start + i * RANGE_SIZE for start, count in entries for i in range(count // RANGE_SIZE)]


def available() -> list[UserNamespace]:
    """Every range this host gives sandboxes, uid and gid ranges paired in order."""
    uids = _ranges(_entries(os.environ.get("SANDBOX_SUBUID", "/etc/subuid")))
    gids = _ranges(_entries(os.environ.get("SANDBOX_SUBGID", "/etc/subgid")))
    return [UserNamespace(u, g, RANGE_SIZE) for u, g in zip(uids, gids)]


def preview() -> UserNamespace:
    """The first range, as a dry run shows it (nothing is leased); HostError if none."""
    ranges = available()
    if not ranges:
        raise HostError("no uid range for sandboxes in /etc/subuid and /etc/subgid",
                        hint=SETUP_HINT)
    return ranges[0]


def allocate(sandbox_id: str) -> tuple[int, UserNamespace]:
    """Lease a free range for ``sandbox_id``: (its number, the range); HostError if none."""
    ranges = available()
    if not ranges:
        raise HostError("no uid range for sandboxes in /etc/subuid and /etc/subgid",
                        hint=SETUP_HINT)
    directory = leases_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    claim = directory / f".{sandbox_id}"  # the lease's content, linked into place whole
    claim.write_text(sandbox_id)
    try:
        first = random.randrange(len(ranges))  # from anywhere: few collisions between processes
        for step in range(len(ranges)):
            index = (first + step) % len(ranges)
            try:
                os.link(claim, directory / str(index))
            except FileExistsError:
                continue
            return index, ranges[index]
    finally:
        claim.unlink()
    raise HostError(f"all {len(ranges)} uid ranges for sandboxes are in use",
                    hint="give the sandbox entry of /etc/subuid and /etc/subgid more ids, "
                    "or run `sandbox gc`")


def release(index: int, sandbox_id: str) -> None:
    """Give a lease back (only if it is still this sandbox's)."""
    path = leases_dir() / str(index)
    try:
        if path.read_text() == sandbox_id:
            path.unlink()
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
        if name.startswith("."):
            continue  # a lease being made
        path = directory / name
        try:
            holder = path.read_text()
            if not holder or not (state.sandboxes_dir() / holder).exists():
                path.unlink()
                removed.append(f"uid range {name}")
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                errors.append(f"uid range {name}: {exc}")
