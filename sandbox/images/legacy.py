"""The directory store of earlier versions, moved into the OCI store once.

Earlier versions kept one unpacked rootfs per name (``images/<name>/rootfs``
with ``image.json``). The first time the OCI store is opened, each becomes a
one-layer image ``<name>:latest`` (its env kept), and the old directory goes;
the old ``busybox`` is simply dropped (it is made again on first use).
"""

from __future__ import annotations

import json
import os

from . import layout

#: The store's own entries, never an old image's name.
STORE_ENTRIES = ("blobs", "layers", "l", "cache", "tmp", "locks", "host", "empty")


#: Store roots this process has looked at already.
_CHECKED: set[str] = set()


def migrate_if_needed() -> None:
    """Move old images in (the store's root is listed once per process)."""
    top = layout.root()
    if str(top) in _CHECKED:
        return
    _CHECKED.add(str(top))
    if not top.is_dir() or not _old_images(top):
        return
    layout.ensure()
    with layout.flocked("migrate"):
        for name in sorted(os.listdir(top)):
            old = top / name
            if name in STORE_ENTRIES or not (old / "rootfs").is_dir() or not (old / "image.json").is_file():
                continue
            if name != "busybox":
                _migrate(name, old)
            layout.remove_tree(old)


def _old_images(top) -> list[str]:
    return [n for n in os.listdir(top) if n not in STORE_ENTRIES and (top / n / "image.json").is_file()]


def _migrate(name: str, old) -> None:
    from .oci import ImageConfig
    from .pack import layer_from_directory
    from .stored import write_image

    try:
        meta = json.loads((old / "image.json").read_text())
        env = tuple(f"{k}={v}" for k, v in (meta.get("env") or {}).items())
    except (OSError, ValueError, AttributeError):
        env = ()
    fd = os.open(old / "rootfs", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        layer = layer_from_directory(fd)
    finally:
        os.close(fd)
    write_image([layer], ImageConfig(env=env), history=[{"created_by": "sandbox: moved from the "
                                                         "directory store"}], tag=f"{name}:latest")
