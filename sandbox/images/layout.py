"""The store on disk: an OCI image layout, plus the unpacked layers beside it.

Under ``$SANDBOX_STATE_DIR/images`` (``root()``)::

    oci-layout                {"imageLayoutVersion": "1.0.0"}
    index.json                the image index: one manifest descriptor per NAME:TAG,
                              named by its org.opencontainers.image.ref.name annotation
    blobs/sha256/<hex>        manifests, configs and layer tars, named by their digest
    layers/<hex of diffID>/   a layer unpacked once: rootfs/ (an overlay lower dir, OCI
                              whiteouts as overlay whiteouts) and link (its short name)
    l/<short name>            -> ../layers/<hex>/rootfs, for deep stacks on old kernels
    cache/<hex of key>        build cache entries: a manifest digest per cache key
    locations/<hex>           which registry repositories hold a blob (for mounts on push)
    host/rootfs               the ``host`` image's skeleton (empty dirs, merged-/usr links)
    tmp/<pid>-<start>-<rand>  work in progress of one process; ``sandbox gc`` removes
                              those whose process is gone
    locks/                    flock files (below; ``pull-<hash>``: one pull per reference)

skopeo, umoci and other OCI tools read the layout as it is
(``oci:$SANDBOX_STATE_DIR/images:NAME:TAG``); the extra directories are ours.

Everything appears atomically: a blob or a layer is written under tmp/ and
renamed into place (a second writer of the same content finds it there and
drops its copy); index.json is replaced by rename under the index lock.
Nothing is ever modified in place. Two locks order writers and removers:

- ``locks/index``: exclusive around each read-modify-write of index.json.
- ``locks/content``: held *shared* by whoever adds content that is not yet
  named (an import, a build, a commit: from the first blob to the tag) or
  resolves an image for a sandbox (until the sandbox's record names it);
  held *exclusive* by the sweep that deletes unreferenced content
  (``image prune``, ``rmi``, ``gc``), which so never deletes what a writer is
  about to name or a sandbox is about to mount.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .. import state
from ..errors import ImageError
from .digest import Digester, VerifiedReader, digest_bytes, encoded

#: The most a manifest, config or index may hold: read into memory, they are bounded.
MAX_DOCUMENT = 4 << 20
CHUNK = 1 << 20
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}


def root() -> Path:
    return state.lib_dir() / "images"


def blob_path(digest: str) -> Path:
    """Where the blob ``digest`` lives (the digest validated first)."""
    return root() / "blobs" / "sha256" / encoded(digest)


def layer_path(diff_id: str) -> Path:
    """The directory of the layer with this diffID (validated first)."""
    return root() / "layers" / encoded(diff_id)


def ensure() -> Path:
    """Make the layout's directories and files if missing; the root."""
    top = root()
    if (top / "index.json").exists():
        return top
    for sub in ("blobs/sha256", "layers", "l", "cache", "tmp", "locks"):
        (top / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(top, 0o700)  # setuid files in layers work only inside a sandbox
    if not (top / "oci-layout").exists():
        write_atomic(top / "oci-layout", json.dumps(LAYOUT_VERSION).encode())
    with index_lock():
        if not (top / "index.json").exists():
            write_atomic(top / "index.json", json.dumps(
                {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": []}).encode())
    return top


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it over: readers see old or new, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


# -- locks ------------------------------------------------------------------

def _lock_fd(name: str) -> int:
    path = root() / "locks" / name
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextmanager
def flocked(name: str, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Hold the flock ``locks/<name>`` (exclusive by default) for the block."""
    fd = _lock_fd(name)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def index_lock():
    return flocked("index")


class _SharedContent:
    """The shared content lock, re-entrant within a process (one flock, counted)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._fd = -1
        self._count = 0
        self._pid = 0

    def acquire(self) -> None:
        with self._mutex:
            if self._pid != os.getpid():  # a fork's copy is not ours to count on
                self._fd, self._count, self._pid = -1, 0, os.getpid()
            if self._count == 0:
                fd = _lock_fd("content")
                fcntl.flock(fd, fcntl.LOCK_SH)
                self._fd = fd
            self._count += 1

    def release(self) -> None:
        with self._mutex:
            self._count -= 1
            if self._count == 0:
                os.close(self._fd)
                self._fd = -1


_SHARED = _SharedContent()


@contextmanager
def writing() -> Iterator[None]:
    """Hold the content lock shared: nothing added or pinned in the block is swept.

    Re-entrant: a build wraps all its steps in one, and the functions it
    calls take it again at no cost.
    """
    ensure()
    _SHARED.acquire()
    try:
        yield
    finally:
        _SHARED.release()


def sweeping():
    """Hold the content lock exclusive: no writer or starting sandbox meanwhile."""
    return flocked("content", fcntl.LOCK_EX)


# -- work dirs --------------------------------------------------------------

@contextmanager
def work_dir(purpose: str) -> Iterator[Path]:
    """A private directory under tmp/, removed at the end; named for gc by pid and start time."""
    ensure()
    name = f"{os.getpid()}-{state.own_start_time()}-{os.urandom(4).hex()}-{purpose}"
    path = root() / "tmp" / name
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        remove_tree(path)


def stale_work_dirs() -> list[Path]:
    """Work dirs whose process is gone (killed mid-import or mid-build)."""
    found = []
    try:
        names = os.listdir(root() / "tmp")
    except FileNotFoundError:
        return []
    for name in names:
        pid, _, rest = name.partition("-")
        start = rest.partition("-")[0]
        alive = pid.isdigit() and state.process_alive(int(pid), int(start) if start.isdigit() else None)
        if not alive:
            found.append(root() / "tmp" / name)
    return found


def remove_tree(path: Path) -> None:
    """Remove a directory tree of ours (made writable first: layers hold read-only dirs)."""
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
    except OSError:
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                full = os.path.join(dirpath, d)
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
        shutil.rmtree(path, ignore_errors=True)


def place(src: Path, dest: Path) -> bool:
    """Rename ``src`` to ``dest``; False (and ``src`` left to its owner) if dest exists."""
    try:
        os.rename(src, dest)
        return True
    except OSError as exc:
        if os.path.lexists(dest):  # another writer placed the same content first
            return False
        raise ImageError(f"cannot store {dest.name}: {exc.strerror}") from exc


# -- blobs ------------------------------------------------------------------

def has_blob(digest: str) -> bool:
    return blob_path(digest).is_file()


def put_blob(data: bytes) -> tuple[str, int]:
    """Store bytes as a blob; (digest, size)."""
    digester = Digester()
    digester.update(data)
    digest = digester.digest
    if not has_blob(digest):
        ensure()
        tmp = root() / "tmp" / f".blob-{os.getpid()}-{os.urandom(6).hex()}"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
        if not place(tmp, blob_path(digest)):
            tmp.unlink()
    return digest, len(data)


def put_blob_file(path: Path, digest: str) -> None:
    """Move a file of ours whose digest the caller computed into blobs/."""
    os.chmod(path, 0o444)
    if has_blob(digest) or not place(path, blob_path(digest)):
        path.unlink(missing_ok=True)


def open_blob(digest: str, size: int | None = None, *, what: str = "blob") -> VerifiedReader:
    """A reader of a stored blob that checks its size and digest as it reads."""
    try:
        raw: BinaryIO = open(blob_path(digest), "rb")  # noqa: SIM115 - closed by the reader
    except FileNotFoundError:
        raise ImageError(f"{what} {digest} is missing from the store",
                         hint="the store is damaged: remove the image and import it again") from None
    return VerifiedReader(raw, digest, size, what=what)


def read_document(digest: str, size: int | None = None, *, what: str = "document") -> dict:
    """A verified JSON object from a blob (manifest, config), bounded in size."""
    path = blob_path(digest)
    if size is not None and (not isinstance(size, int) or not 0 <= size <= MAX_DOCUMENT):
        raise ImageError(f"{what} {digest} claims {size!r} bytes: at most {MAX_DOCUMENT} accepted")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DOCUMENT + 1)
    except FileNotFoundError:
        raise ImageError(f"{what} {digest} is missing from the store",
                         hint="the store is damaged: remove the image and import it again") from None
    if len(data) > MAX_DOCUMENT or (size is not None and len(data) != size):
        raise ImageError(f"{what} {digest} has {len(data)} bytes, expected {size}")
    if digest_bytes(data) != digest:
        raise ImageError(f"{what} {digest} does not match its digest: the store is corrupt")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{what} {digest} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what} {digest} is not a JSON object")
    return doc
