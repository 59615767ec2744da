"""Making test images: tar layers in memory, images stacked on busybox."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

from sandbox import images
from sandbox.images import layout


def tar_layer(*members: tuple) -> bytes:
    """A plain tar of (name, data) files, (name, None) directories and (name, "->target") links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, str) and data.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                tar.addfile(info)
            else:
                data = data.encode() if isinstance(data, str) else data
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_on_busybox(tag: str, *layers: bytes, config=None) -> images.StoredImage:
    """busybox plus one layer per tar, tagged ``tag``."""
    base = images.lookup("busybox") if images.get("busybox") else None
    with images.writing():
        stored = [images.layer_from_tar(io.BytesIO(data)) for data in layers]
        return images.write_image(stored, config or base.config.config, base=base,
                                  history=[{"created_by": f"test layer {i}"} for i in range(len(stored))],
                                  tag=tag)


def store_is_consistent() -> list[str]:
    """Problems found: blobs not matching their names, tags naming what is gone, work left."""
    problems = []
    layout.ensure()
    blobs = layout.root() / "blobs" / "sha256"
    for name in os.listdir(blobs):
        if hashlib.sha256((blobs / name).read_bytes()).hexdigest() != name:
            problems.append(f"blob {name} does not match its name")
    for image in images.list_images():
        for layer in image.layers:
            if not os.path.isdir(layer.path) or not (blobs / layer.digest[7:]).is_file():
                problems.append(f"{image.tags}: layer {layer.diff_id} missing")
    if os.listdir(layout.root() / "tmp"):
        problems.append(f"work left: {os.listdir(layout.root() / 'tmp')}")
    return problems
