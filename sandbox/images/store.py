"""The directory store: one unpacked root filesystem per imported image name."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import state
from ..errors import ImageError, ImageNotFound
from .model import Image

if TYPE_CHECKING:
    from .unpack import Bounds, Target

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
RESERVED = ("busybox", "host")
#: The owner file of a work directory (``work_dir``).
OWNER = ".owner"


def images_dir() -> Path:
    return state.lib_dir() / "images"


def check_name(name: str) -> None:
    if not _NAME_RE.match(name or ""):
        raise ImageError(
            f"invalid image name {name!r}: expected lowercase letters, digits, '_', '.', '-'")


def stored_image(name: str) -> Image:
    """An imported image by name."""
    root = images_dir() / name / "rootfs"
    if not _NAME_RE.match(name) or not root.is_dir():
        from . import names

        raise ImageNotFound(name, [n for n in names() if n != name])
    meta = _read_meta(images_dir() / name)
    return Image(name, (str(root),), env=meta.get("env", {}), size=meta.get("size"),
                 created=meta.get("created"))


def list_images() -> list[Image]:
    """Every image present in the store (built-in ones once made)."""
    found = []
    if images_dir().is_dir():
        for name in sorted(os.listdir(images_dir())):
            if (images_dir() / name / "rootfs").is_dir() and _NAME_RE.match(name):
                meta = _read_meta(images_dir() / name)
                found.append(Image(name, (str(images_dir() / name / "rootfs"),),
                                   size=meta.get("size"), created=meta.get("created")))
    return found


def import_image(source: str, name: str, *, replace: bool = False,
                 bounds: "Bounds | None" = None) -> Image:
    """Copy a directory, or unpack a tar archive (a path, or ``-`` for stdin), into the store.

    Both go through ``unpack.apply_entry``: nothing is ever written outside the
    new image (see ``unpack``). The image appears atomically: it is assembled
    beside the store and renamed into place, so a failed import leaves nothing
    behind (a killed one leaves a ``.import-*`` directory that `sandbox gc` removes).
    """
    from .unpack import Bounds, Target, UnpackError

    check_name(name)
    if name in RESERVED:
        raise ImageError(f"image name {name!r} is reserved for the built-in image")
    target = images_dir() / name
    if target.exists() and not replace:
        raise ImageError(f"image {name!r} already exists", hint="remove it with `sandbox image rm`")
    kind, handle = open_source(source)
    try:
        work = work_dir(f".import-{name}-")
        try:
            (work / "rootfs").mkdir(0o755)
            with Target(work / "rootfs", bounds=bounds or Bounds()) as unpacked:
                _unpack(kind, handle, unpacked)
            (work / "rootfs").chmod(0o755)
            commit_rootfs(work, name, replace=replace, size=unpacked.bytes)
        except UnpackError as exc:
            raise ImageError(f"cannot import {source}: {exc.message}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if kind == "directory":
            os.close(handle)
        elif source != "-":
            handle.close()
    return stored_image(name)


#: What `image import` reads, for the message that refuses anything else.
SOURCES = ("a directory, a tar archive (plain, gzip, xz, bzip2 or zstd) "
           "or - for standard input")


def open_source(source: str) -> tuple[str, Any]:
    """("directory", fd) or ("archive", binary stream) for ``source``; anything else refused.

    Checked with stat before it is opened, so a device or a FIFO is never
    opened (a read from /dev/zero or a FIFO never ends); ``-`` is stdin.
    """
    if source == "-":
        return "archive", sys.stdin.buffer
    try:
        st = os.stat(source)
    except OSError as exc:
        raise ImageError(f"cannot import {source}: {_strerror(exc)}") from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise ImageError(f"cannot import {source}: it is {_kind(st.st_mode)}; accepted: {SOURCES}")
    if stat.S_ISDIR(st.st_mode):
        _refuse_the_store(source)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageError(f"cannot import {source}: {_strerror(exc)}") from None
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise ImageError(f"cannot import {source}: it changed while it was being opened")
    if stat.S_ISDIR(st.st_mode):
        return "directory", fd
    os.set_blocking(fd, True)
    return "archive", os.fdopen(fd, "rb")


def _unpack(kind: str, handle: Any, target: "Target") -> None:
    from .tree import walk_directory
    from .unpack import walk

    if kind == "directory":
        walk_directory(handle, target)
    else:
        walk(handle, target)


def _refuse_the_store(source: str) -> None:
    """A directory that holds the image store would be copied into itself, without end."""
    store = os.path.realpath(images_dir())
    real = os.path.realpath(source)
    if store == real or store.startswith(real.rstrip("/") + "/"):
        raise ImageError(f"cannot import {source}: it holds the image store ({store}), which "
                         "an import writes to; accepted: a directory outside it")


def _kind(mode: int) -> str:
    for test, text in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return text
    return "not a regular file"


def _strerror(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    return (exc.strerror or str(exc)).lower()


def work_dir(prefix: str) -> Path:
    """A private directory beside the store to assemble an image in, naming its owner.

    A process killed while it works leaves it: `sandbox gc` removes those
    whose owner is dead (``collect_leftovers``).
    """
    images_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=images_dir()))
    state.write_owner(work, OWNER)
    return work


def collect_leftovers() -> list[str]:
    """Remove what killed imports, builds and removals left in the store; their names."""
    removed = []
    try:
        names = [n for n in os.listdir(images_dir()) if n.startswith(".")]
    except FileNotFoundError:
        return removed
    for name in names:
        path = images_dir() / name
        if path.is_dir() and not path.is_symlink() and state.owner_gone(path, OWNER):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


def commit_rootfs(work: Path, name: str, *, replace: bool = False, env: dict | None = None,
                  size: int | None = None) -> None:
    """Write metadata into ``work`` and move it into the store as ``name``."""
    (work / OWNER).unlink(missing_ok=True)
    if size is None:
        size = sum(f.stat().st_size for f in (work / "rootfs").rglob("*")
                   if f.is_file() and not f.is_symlink())
    (work / "image.json").write_text(json.dumps({"name": name, "created": time.time(),
                                                 "size": size, "env": env or {}}))
    target = images_dir() / name
    if replace and target.exists():
        old = images_dir() / f".old-{name}-{os.getpid()}"
        os.rename(target, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(work, target)
    except OSError as exc:
        if target.exists():  # another process made it first: theirs is as good
            return
        raise ImageError(f"cannot store image {name!r}: {exc.strerror}") from exc


def remove_image(name: str) -> None:
    target = images_dir() / name
    if not _NAME_RE.match(name) or not target.is_dir():
        raise ImageNotFound(name)
    trash = images_dir() / f".rm-{name}-{os.getpid()}"
    os.rename(target, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _read_meta(path: Path) -> dict:
    try:
        return json.loads((path / "image.json").read_text())
    except (OSError, ValueError):
        return {}
