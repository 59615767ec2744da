"""The directory store: one unpacked root filesystem per imported image name."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from .. import state
from ..errors import ImageError, ImageNotFound
from .model import Image

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
RESERVED = ("busybox", "host")


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


def import_image(source: str, name: str, *, replace: bool = False) -> Image:
    """Copy a directory or unpack a rootfs tarball into the store as ``name``.

    The image appears atomically: it is assembled beside the store and renamed
    into place, so a failed import leaves nothing behind.
    """
    check_name(name)
    if name in RESERVED:
        raise ImageError(f"image name {name!r} is reserved for the built-in image")
    src = Path(source)
    if not src.exists():
        raise ImageError(f"cannot import {source!r}: no such file or directory")
    target = images_dir() / name
    if target.exists() and not replace:
        raise ImageError(f"image {name!r} already exists", hint="remove it with `sandbox image rm`")
    images_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=images_dir()))
    try:
        rootfs = work / "rootfs"
        if src.is_dir():
            shutil.copytree(src, rootfs, symlinks=True)
        elif _tarfile().is_tarfile(src):
            rootfs.mkdir()
            with _tarfile().open(src) as tar:
                tar.extractall(rootfs, filter="tar")
        else:
            raise ImageError(f"cannot import {source!r}: expected a directory or a tar archive")
        rootfs.chmod(0o755)
        commit_rootfs(work, name, replace=replace)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return stored_image(name)


def commit_rootfs(work: Path, name: str, *, replace: bool = False, env: dict | None = None) -> None:
    """Write metadata into ``work`` and move it into the store as ``name``."""
    size = sum(f.stat().st_size for f in (work / "rootfs").rglob("*") if f.is_file() and not f.is_symlink())
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


def _tarfile():
    """tarfile, imported when an image is imported from an archive: every process that
    runs sandboxes imports this module, and tarfile (with bz2 and lzma) would sit in its
    memory, and in every fork of it, for nothing."""
    import tarfile

    return tarfile
