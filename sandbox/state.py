"""Where things live, and the records that let `sandbox gc` clean up after a crash.

Two roots, each overridable by an environment variable:

- ``SANDBOX_STATE_DIR`` (default ``/var/lib/sandbox``): images and networks,
  which outlive any process.
- ``SANDBOX_RUN_DIR`` (default ``/run/sandbox``): one directory per live
  sandbox, holding its record (written before anything is created on the
  host), its log file and its rootfs mount point.

A record names its owner (pid and start time), so a sandbox whose owner died
can be told from a live one without any daemon.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StateError
from .linux.proc import own_start_time, process_alive, process_start_time  # noqa: F401 - re-exported

RECORD_NAME = "record.json"
#: What a sandbox id or name may look like (spec names and hex ids): never a path.
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
REMOVED_NAME = "removed"


def lib_dir() -> Path:
    """Persistent state: images and networks."""
    return Path(os.environ.get("SANDBOX_STATE_DIR", "/var/lib/sandbox"))


def run_dir() -> Path:
    """Per-sandbox state of live sandboxes."""
    return Path(os.environ.get("SANDBOX_RUN_DIR", "/run/sandbox"))


def sandboxes_dir() -> Path:
    return run_dir() / "sandboxes"


def names_dir() -> Path:
    return run_dir() / "names"


def new_id() -> str:
    """A fresh sandbox id: 12 random hex digits, unique across processes."""
    return os.urandom(6).hex()  # as secrets.token_hex, without hashlib and OpenSSL loaded


@dataclass
class Record:
    """What a sandbox created on the host, written before it is created."""

    id: str
    name: str | None
    image: str
    command: list[str]
    created: float
    owner_pid: int
    owner_start: int | None
    cgroups: list[str] = field(default_factory=list)
    network: dict[str, Any] = field(default_factory=dict)
    image_id: str | None = None  # the stored image mounted (kept by the image sweep)
    userns: int | None = None  # the uid range leased for userns=auto (security.subids)
    #: What `sandbox exec` needs to start a process in it (``sandbox.entry``).
    entry: dict[str, Any] = field(default_factory=dict)

    @property
    def owner_alive(self) -> bool:
        """A sandbox lives exactly as long as its owner: its init dies with it."""
        return process_alive(self.owner_pid, self.owner_start)


class SandboxDir:
    """The state directory of one sandbox: record, log, rootfs mount point."""

    def __init__(self, sandbox_id: str) -> None:
        self.id = sandbox_id
        self.path = sandboxes_dir() / sandbox_id

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_NAME

    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    def create(self) -> None:
        """Make the directory; fails if the id is taken (ids never collide silently).

        Inside the container's mount namespace a tmpfs is mounted over it to
        hold the rootfs and its writable layer; on the host it holds only the
        record and the log.
        """
        try:
            os.mkdir(self.path, 0o700)
        except FileNotFoundError:  # the first sandbox here: make the parents
            os.makedirs(self.path.parent, mode=0o711, exist_ok=True)
            os.mkdir(self.path, 0o700)

    def write_record(self, record: Record) -> None:
        """Write the record (at each create: a kept sandbox's names its new owner), whole:
        a reader sees the old one or the new one."""
        write_atomically(self.record_path, json.dumps(vars(record)).encode())

    def read_record(self) -> Record:
        try:
            data = json.loads(self.record_path.read_text())
            known = set(Record.__dataclass_fields__)
            return Record(**{k: v for k, v in data.items() if k in known})
        except FileNotFoundError:
            raise StateError(f"no such sandbox: {self.id}") from None
        except (ValueError, TypeError) as exc:
            raise StateError(f"unreadable record for sandbox {self.id}: {exc}") from exc

    def mark_removed(self) -> None:
        """Say, before killing it, that another process removes this sandbox (`sandbox rm -f`)."""
        try:
            (self.path / REMOVED_NAME).write_text(str(os.getpid()))
        except FileNotFoundError:
            pass

    def removed_by_another(self) -> bool:
        return (self.path / REMOVED_NAME).exists()

    def remove(self) -> None:
        """Remove the directory and the files in it (a kept sandbox's layer is unmounted
        first: ``supervisor.layer``)."""
        path = str(self.path)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(path, name))
            except IsADirectoryError:
                os.rmdir(os.path.join(path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass


def write_atomically(path: Path, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` in one rename: never seen half-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def claim_name(name: str, sandbox_id: str) -> None:
    """Reserve a sandbox name atomically; a live holder makes this fail (this sandbox
    holding it already is fine: a kept one starting again)."""
    names_dir().mkdir(parents=True, exist_ok=True)
    link = names_dir() / name
    for _ in range(2):
        try:
            os.symlink(sandbox_id, link)
            return
        except FileExistsError:
            holder = os.readlink(link)
            if holder == sandbox_id:
                return
            if (sandboxes_dir() / holder).exists():
                raise StateError(
                    f"name {name!r} is in use by sandbox {holder}",
                    hint="choose another --name or remove it with `sandbox rm`",
                ) from None
            _unlink_quiet(link)
    raise StateError(f"could not claim name {name!r}")


def release_name(name: str | None, sandbox_id: str) -> None:
    """Give a name back, only if this sandbox still holds it."""
    if not name:
        return
    link = names_dir() / name
    try:
        if os.readlink(link) == sandbox_id:
            os.unlink(link)
    except OSError:
        pass


def resolve(ref: str) -> SandboxDir:
    """The sandbox with this id, unique id prefix or name.

    ``ref`` comes from a command line (or a request): anything but an id or a
    name is no sandbox, never a path (`sandbox rm -f ../../x` removed the files
    of a directory outside the state root).
    """
    if not _REF_RE.match(ref or ""):
        raise StateError(f"no such sandbox: {ref!r}",
                         hint="give an id, an id prefix or a name, as `sandbox ps` lists them")
    link = names_dir() / ref
    if link.is_symlink():
        ref = os.readlink(link)
        if not _REF_RE.match(ref):
            raise StateError(f"the name {link.name!r} points at {ref!r}, which is no sandbox id")
    if (sandboxes_dir() / ref).is_dir():
        return SandboxDir(ref)
    matches = [d for d in list_ids() if d.startswith(ref)] if ref else []
    if len(matches) == 1:
        return SandboxDir(matches[0])
    if len(matches) > 1:
        raise StateError(f"ambiguous sandbox id prefix {ref!r}: {', '.join(matches)}")
    raise StateError(f"no such sandbox: {ref}", hint="`sandbox ps` lists live sandboxes")


def list_ids() -> list[str]:
    try:
        return sorted(os.listdir(sandboxes_dir()))
    except FileNotFoundError:
        return []


def iter_records() -> Iterator[tuple[SandboxDir, Record | None]]:
    """Every sandbox directory with its record (None when unreadable or missing)."""
    for sandbox_id in list_ids():
        sdir = SandboxDir(sandbox_id)
        try:
            yield sdir, sdir.read_record()
        except StateError:
            yield sdir, None


def new_record(sandbox_id: str, spec: Any, image_id: str | None = None) -> Record:
    """The record of a sandbox about to be created by this process."""
    return Record(
        image_id=image_id,
        id=sandbox_id,
        name=spec.name,
        image=spec.image,
        command=list(spec.command),
        created=time.time(),
        owner_pid=os.getpid(),
        owner_start=own_start_time(),
    )


#: A work directory that does not (yet) name its owner is left alone this long.
OWNER_GRACE = 30.0


def write_owner(directory: Path, name: str = "owner") -> None:
    """Name this process (pid and start time) as the owner of ``directory``, for gc."""
    owner = {"pid": os.getpid(), "start": own_start_time()}
    (directory / name).write_text(json.dumps(owner))


def owner_gone(directory: Path, name: str = "owner", *, now: float | None = None) -> bool:
    """True when the process that owns ``directory`` is dead: its work there can go.

    A directory without an owner file is taken as dead once older than
    OWNER_GRACE (its maker may be between mkdir and writing the file).
    """
    try:
        owner = json.loads((directory / name).read_text())
    except FileNotFoundError:
        try:
            age = (now or time.time()) - os.stat(directory).st_mtime
        except FileNotFoundError:
            return False
        return age > OWNER_GRACE
    except (OSError, ValueError):
        return False  # being written right now
    return not process_alive(owner.get("pid"), owner.get("start"))


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
