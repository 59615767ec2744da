"""Job caches: directories kept between jobs on a worker, under a key made from the workspace.

A job's ``[cache]`` names container paths and a key template
(``pip-{hash:requirements.txt}``: text, ``{hash:GLOB}`` = a digest of the
workspace files the glob matches, ``{env:NAME}`` = a value of the job's env).
Before the steps, the key is rendered; each path gets a directory of the
job's own, bound read-write into every step at that path, filled from the
entry stored under the key if there is one (a hit). After a job that
passed, a miss is saved as the key's entry; a hit is never saved again (as
actions/cache does: an entry, once made, does not change).

The store is this host's, under ``$SANDBOX_STATE_DIR/caches/`` (one entry per
key and set of paths, ``<id>/``: ``meta.json``, a ``used`` stamp, one tree
per path). Its size is capped (SANDBOX_CACHE_SIZE, default 2g): saving an
entry evicts the least recently used ones until the store fits, and an
entry larger than the cap is not saved. Only an exact key restores an
entry, so a cache never leaks between keys; `sandbox cache rm KEY` removes
one (a poisoned cache, say) at once.

Caches are content that earlier jobs wrote, so both ways go through the
engine's untrusted-tree copy (``sandbox.copy_tree_into``): links are copied
as links and never followed, devices are refused, and the copy is bounded.
Saving happens in a work dir named by its owner (gc removes a dead one's),
made visible by one rename; readers hold a shared lock, and removal and
eviction an exclusive one, so an entry never disappears under a restore.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sandbox import Mount, UnpackError, copy_tree_into, lib_dir, owner_gone, parse_size, write_owner

from .ci_keys import key_parts
from .errors import JobError
from .events import JobLog
from .model import CacheSpec
from .workspace import matches as workspace_matches

DEFAULT_SIZE = "2g"
MAX_ENTRIES = 1_000_000
_SAFE_VALUE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def store_dir() -> Path:
    return lib_dir() / "caches"


def size_cap() -> int:
    """The store's size cap in bytes (SANDBOX_CACHE_SIZE, like "2g")."""
    value = os.environ.get("SANDBOX_CACHE_SIZE", DEFAULT_SIZE)
    size = parse_size("SANDBOX_CACHE_SIZE", value)
    if size is None or size <= 0:
        raise JobError(f"SANDBOX_CACHE_SIZE={value!r}: expected a size like 500m or 2g")
    return size


@dataclass(frozen=True)
class Entry:
    """One stored cache: its id (directory), key, paths, size in bytes, times."""

    id: str
    key: str
    paths: tuple[str, ...]
    size: int
    created: float
    used: float


def entry_id(key: str, paths: tuple[str, ...]) -> str:
    return hashlib.sha256("\0".join((key, *paths)).encode()).hexdigest()[:32]


def render_key(template: str, workspace: str, env: Mapping[str, str]) -> str:
    """The key for this job: placeholders replaced (JobError when a glob matches nothing)."""
    out = []
    for kind, arg in key_parts(template):
        if kind is None:
            out.append(arg)
        elif kind == "hash":
            out.append(_hash_files(workspace, arg))
        else:
            value = env.get(arg, "")
            out.append(value if _SAFE_VALUE_RE.match(value) else
                       "v" + hashlib.sha256(value.encode()).hexdigest()[:12])
    return "".join(out)


def _hash_files(workspace: str, pattern: str) -> str:
    """A digest of the names and contents of the workspace's regular files matching ``pattern``."""
    digest = hashlib.sha256()
    found = [(rel, real) for rel, real, inside in workspace_matches(workspace, pattern)
             if inside and os.path.isfile(real)]
    if not found:
        raise JobError(f"cache key: {{hash:{pattern}}} matches no file of the workspace",
                       hint="name a file the workspace has, like requirements.txt")
    for rel, real in found:
        digest.update(rel.encode() + b"\0")
        with open(real, "rb") as f:
            for block in iter(functools.partial(f.read, 1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:20]


# -- the store ------------------------------------------------------------------

@contextmanager
def _locked(exclusive: bool) -> Iterator[None]:
    root = store_dir()
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def entries() -> list[Entry]:
    """Every stored entry, least recently used first."""
    found = []
    try:
        names = os.listdir(store_dir())
    except FileNotFoundError:
        return []
    for name in names:
        entry = _read_entry(name)
        if entry is not None:
            found.append(entry)
    return sorted(found, key=lambda e: e.used)


def _read_entry(name: str) -> Entry | None:
    if name.startswith("."):
        return None
    path = store_dir() / name
    try:
        meta = json.loads((path / "meta.json").read_text())
        used = os.stat(path / "used").st_mtime
        return Entry(name, meta["key"], tuple(meta["paths"]), int(meta["size"]),
                     float(meta["created"]), used)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove(ref: str) -> list[Entry]:
    """Remove every entry whose key is ``ref`` (or whose id starts with it); the removed."""
    with _locked(exclusive=True):
        gone = [e for e in entries() if e.key == ref or (len(ref) >= 6 and e.id.startswith(ref))]
        for entry in gone:
            _delete(store_dir() / entry.id)
    return gone


def remove_all() -> list[Entry]:
    with _locked(exclusive=True):
        gone = entries()
        for entry in gone:
            _delete(store_dir() / entry.id)
    return gone


def _delete(path: Path) -> None:
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def collect() -> list[str]:
    """Remove work dirs of saves whose process died (gc); their names."""
    removed: list[str] = []
    try:
        names = os.listdir(store_dir())
    except FileNotFoundError:
        return removed
    for name in names:
        path = store_dir() / name
        if name.startswith(".save-") and owner_gone(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


# -- one job's cache ----------------------------------------------------------

class JobCache:
    """A job's use of the cache: its directories, restored before the steps, saved after."""

    def __init__(self, spec: CacheSpec, job_dir: Path, log: JobLog) -> None:
        self.spec = spec
        self.log = log
        self.root = job_dir / "caches"
        self.dirs = [self.root / str(i) for i in range(len(spec.paths))]
        self.key: str | None = None
        self.hit = False

    def mounts(self) -> tuple[Mount, ...]:
        """The job's cache directories, bound read-write at their paths in every step."""
        return tuple(Mount(str(d), path, read_only=False) for d, path in zip(self.dirs, self.spec.paths))

    def restore(self, workspace: str, env: Mapping[str, str]) -> None:
        """Render the key, make the directories, fill them from a stored entry (JobError: key)."""
        self.key = render_key(self.spec.key, workspace, env)
        for d in self.dirs:
            d.mkdir(parents=True)
            d.chmod(0o777)  # the steps' user writes it; the job's directory is 0700
        ident = entry_id(self.key, self.spec.paths)
        with _locked(exclusive=False):
            entry = _read_entry(ident)
            if entry is not None:
                self.hit = self._copy_in(store_dir() / ident)
        how = "restored" if self.hit else "not found: it is saved if the job passes"
        self.log.emit("note", data=f"cache {self.key}: {how}".encode())

    def _copy_in(self, entry: Path) -> bool:
        try:
            for i, d in enumerate(self.dirs):
                _copy(entry / str(i), d, size_cap())
        except (UnpackError, OSError) as exc:
            self.log.emit("note", data=f"cache {self.key}: not restored: {exc}".encode())
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir()
                d.chmod(0o777)
            return False
        os.utime(entry / "used")
        return True

    def save(self) -> None:
        """Store the directories under the key, unless it was a hit; evict to fit the cap."""
        if self.key is None or self.hit:
            return
        cap = size_cap()
        work = store_dir() / f".save-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            self._save_into(work, cap)
        except (UnpackError, OSError, JobError) as exc:
            self.log.emit("note", data=f"cache {self.key}: not saved: {exc}".encode())
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _save_into(self, work: Path, cap: int) -> None:
        work.parent.mkdir(parents=True, exist_ok=True)
        work.mkdir(mode=0o700)
        write_owner(work)
        size = 0
        for i, d in enumerate(self.dirs):
            _copy(d, work / str(i), cap - size)
            size += _tree_size(work / str(i))
        meta = {"key": self.key, "paths": list(self.spec.paths), "size": size,
                "created": time.time()}
        (work / "meta.json").write_text(json.dumps(meta))
        (work / "used").touch()
        (work / "owner").unlink()
        ident = entry_id(str(self.key), self.spec.paths)
        with _locked(exclusive=True):
            try:
                os.rename(work, store_dir() / ident)
            except OSError:  # another job saved the same key meanwhile: keep the first
                return
            evicted = _evict(cap, keep=ident)
        self.log.emit("note", data=f"cache {self.key}: saved ({_mib(size)})".encode())
        for entry in evicted:
            self.log.emit("note", data=f"cache {entry.key}: evicted (least recently used)".encode())


def _copy(source: Path, dest: Path, max_bytes: int) -> None:
    """Copy one tree with the engine's untrusted copy (links stay links, bounded)."""
    dest.mkdir(exist_ok=True)
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        copy_tree_into(fd, str(dest), max_members=MAX_ENTRIES, max_bytes=max(max_bytes, 1))
    finally:
        os.close(fd)


def _tree_size(path: Path) -> int:
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                continue
    return total


def _evict(cap: int, keep: str) -> list[Entry]:
    """Remove least recently used entries until the store fits ``cap`` (call under the lock)."""
    stored = entries()
    total = sum(e.size for e in stored)
    evicted = []
    for entry in stored:
        if total <= cap:
            break
        if entry.id == keep:
            continue
        _delete(store_dir() / entry.id)
        total -= entry.size
        evicted.append(entry)
    return evicted


def _mib(size: int) -> str:
    from sandbox import format_size

    return format_size(size)
