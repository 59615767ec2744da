"""Layers: stored once as a blob, unpacked once by diffID, shared by every image.

A layer's blob is its tar stream as given (plain or compressed; ours are
plain, so blob digest == diffID); its unpacked form lives in
``layers/<hex of diffID>/rootfs``, an overlay lower dir in which OCI
whiteouts became overlay whiteouts (``unpack.OverlayFormat``). Each layer
also gets a short name, ``l/<10 letters>`` -> its rootfs, so a deep stack
can be mounted with lower dirs that fit one page on kernels without
``fsconfig(lowerdir+)``.

Layers are untrusted: they are unpacked only by ``unpack.walk`` (which
never writes outside the root), and the diffID and blob digest are computed
from the bytes as they are read, then checked against what the manifest
says. Everything is assembled in a work dir and renamed into place, under
the shared content lock, so a killed writer leaves only its work dir.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ImageError
from . import layout
from .digest import Digester, VerifiedReader, encoded
from .oci import MEDIA_LAYER, Descriptor
from .streams import Readable, ReadCloser


@dataclass(frozen=True)
class Layer:
    """A stored layer: its diffID (uncompressed tar), and its blob's digest, size, type."""

    diff_id: str
    digest: str
    size: int
    media_type: str = MEDIA_LAYER

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)

    @property
    def path(self) -> str:
        """The overlay lower dir of this layer."""
        return str(layout.layer_path(self.diff_id) / "rootfs")


def layer_from_tar(stream: Readable, bounds=None, *, diff_id: str | None = None) -> Layer:
    """Store a tar stream (plain or compressed) as a layer; its blob is the plain tar.

    ``diff_id``: what the stream must unpack to (a docker-archive's config
    names it); anything else is refused before the layer is stored.
    """
    from .unpack import walk

    with layout.writing(), layout.work_dir("layer") as work:
        digester = Digester()
        with open(work / "blob", "wb") as blob:
            def tee(data: bytes) -> None:
                digester.update(data)
                blob.write(data)

            unpack_into(work / "layer", lambda target: walk(stream, target, tee=tee), bounds)
        _check_diff_id(digester.digest, diff_id, "the layer")
        store_unpacked(work / "layer", work / "blob", digester.digest)
        return Layer(digester.digest, digester.digest, digester.size)


def layer_from_blob(stream: ReadCloser, desc: Descriptor, diff_id: str, bounds=None) -> Layer:
    """Store a layer blob from outside (a registry, an OCI archive) as it is, unpacked.

    One pass: the bytes go to the blob file and, decompressed, to the
    unpacker. The blob must match ``desc`` (size and digest) and unpack to
    ``diff_id``; otherwise nothing is stored (ImageError). A layer already
    stored is not read at all.
    """
    from .unpack import walk

    if is_unpacked(diff_id) and layout.has_blob(desc.digest):
        return Layer(diff_id, desc.digest, desc.size, desc.media_type)
    with layout.writing(), layout.work_dir("blob") as work:
        unpacked = Digester()
        with open(work / "blob", "wb") as blob:
            reader = VerifiedReader(_Copying(stream, blob), desc.digest, desc.size, what="layer")
            unpack_into(work / "layer", lambda target: walk(reader, target, tee=unpacked.update), bounds)
            reader.drain()
        _check_diff_id(unpacked.digest, diff_id, f"layer {desc.digest}")
        layout.put_blob_file(work / "blob", desc.digest)
        _place(work / "layer", diff_id)
    return Layer(diff_id, desc.digest, desc.size, desc.media_type)


def _check_diff_id(seen: str, expected: str | None, what: str) -> None:
    if expected is not None and seen != expected:
        raise ImageError(f"{what} unpacks to {seen}, not the diffID {expected} its image names",
                         hint="the image is damaged or was tampered with: nothing was stored")


class _Copying:
    """A readable stream that writes every byte it hands out to ``sink``."""

    def __init__(self, stream: ReadCloser, sink: BinaryIO) -> None:
        self._stream = stream
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._sink.write(data)
        return data

    def close(self) -> None:
        """Close the stream it reads (the sink is the caller's)."""
        self._stream.close()


def store_unpacked(work_layer: Path, blob: Path, diff_id: str) -> None:
    """Move a layer made in a work dir into the store: its plain tar ``blob`` (whose
    digest, the diffID, the caller computed) and its unpacked ``work_layer``."""
    layout.put_blob_file(blob, diff_id)
    _place(work_layer, diff_id)


def unpack_blob(desc: Descriptor, diff_id: str) -> Layer:
    """Unpack a stored layer blob (if not yet unpacked), checking its digest and diffID."""
    layer = Layer(diff_id, desc.digest, desc.size, desc.media_type)
    if is_unpacked(diff_id):
        return layer
    with layout.writing(), layout.work_dir("unpack") as work:
        digester = Digester()
        reader = layout.open_blob(desc.digest, desc.size, what="layer")
        try:
            _unpack(reader, work / "layer", digester.update)
            reader.drain()
        finally:
            reader.close()
        _check_diff_id(digester.digest, diff_id, f"layer {desc.digest}")
        _place(work / "layer", diff_id)
    return layer


def is_unpacked(diff_id: str) -> bool:
    return (layout.layer_path(diff_id) / "link").is_file()


def short_link(diff_id: str) -> str:
    """The layer's short name, relative to the store's root (``l/XXXXXXXXXX``)."""
    name = (layout.layer_path(diff_id) / "link").read_text().strip()
    if len(name) != 10 or not name.isalnum():
        raise ImageError(f"layer {diff_id} has a damaged short link {name!r}")
    return f"l/{name}"


def unpacked_size(diff_id: str) -> int:
    try:
        return int((layout.layer_path(diff_id) / "size").read_text())
    except (OSError, ValueError):
        return 0


def _unpack(stream: Readable, dest: Path, tee: Callable[[bytes], None]) -> None:
    from .unpack import walk

    unpack_into(dest, lambda target: walk(stream, target, tee=tee))


def unpack_into(dest: Path, fill, bounds=None) -> None:
    """Make ``dest/rootfs`` an overlay lower dir filled by ``fill(target)``, and its size file."""
    from .unpack import Bounds, OverlayFormat, Target

    rootfs = dest / "rootfs"
    rootfs.mkdir(parents=True, mode=0o755)
    with Target(rootfs, bounds=bounds or Bounds(), disk_format=OverlayFormat()) as target:
        fill(target)
        size = target.bytes
    os.chmod(rootfs, 0o755)
    (dest / "size").write_text(str(size))


def _place(work_layer: Path, diff_id: str) -> None:
    """Give the unpacked layer its short link and rename it into layers/ (unless there)."""
    dest = layout.layer_path(diff_id)
    if is_unpacked(diff_id):
        return
    links = layout.root() / "l"
    while True:
        name = base64.b32encode(os.urandom(10)).decode()[:10]
        try:
            os.symlink(f"../layers/{encoded(diff_id)}/rootfs", links / name)
            break
        except FileExistsError:
            continue
    (work_layer / "link").write_text(name)
    if not layout.place(work_layer, dest):
        os.unlink(links / name)
