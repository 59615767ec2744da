"""The image store as a copy's Destination (pull) and Source (push).

Pulled content goes in as any other: each layer blob kept as the registry
served it and unpacked in the same pass (``layers.layer_from_blob``, which
checks its digest and diffID before anything is placed), the config as a
blob, the manifest last, tagged with the reference as the user wrote it.
A pull killed on the way leaves verified blobs that no tag names (the next
pull reuses them, ``sandbox gc`` sweeps them) and its work dir (gc removes
it): never a half image.
"""

from __future__ import annotations

import dataclasses
import errno

from ...errors import ImageError, ImageNotFound
from .. import layout
from ..layers import is_unpacked, layer_from_blob
from ..oci import Descriptor
from ..reference import Reference
from ..stored import StoredImage, lookup, store_manifest
from ..streams import BlobReader
from ..unpack import Bounds
from . import locations
from .copy import Opener
from .manifests import check_digest


class StoreDestination:
    """Pull side: the store, naming the image ``tag`` once it is whole."""

    action = "pulled"

    def __init__(self, tag: Reference, *, origin: tuple[str, str] | None = None,
                 bounds: Bounds | None = None) -> None:
        self.tag = tag
        self.name = str(tag)
        self.origin = origin  # (registry, repository) the blobs come from, for later mounts
        self.bounds = bounds
        self.image: StoredImage | None = None

    def has_image(self, digest: str) -> bool:
        try:
            image = lookup(self.tag)
        except ImageNotFound:
            return False
        if image.id != digest or not all(is_unpacked(layer.diff_id) for layer in image.layers):
            return False
        self.image = dataclasses.replace(image, tags=(self.name,))
        return True

    def has_blob(self, desc: Descriptor, diff_id: str | None) -> bool:
        return layout.has_blob(desc.digest) and (diff_id is None or is_unpacked(diff_id))

    def mount_blob(self, desc: Descriptor) -> str | None:
        return None

    def put_blob(self, desc: Descriptor, diff_id: str | None, opener: Opener) -> None:
        try:
            with opener() as reader:
                if diff_id is None:
                    data = reader.read(desc.size + 1)
                    check_digest(data, desc.digest, f"blob {desc.digest}")
                    layout.put_blob(data)
                else:
                    layer_from_blob(reader, desc, diff_id, self.bounds)
        except OSError as exc:
            raise _store_error(exc, desc) from None
        except ImageError as exc:  # the unpacker names the member it could not write
            if isinstance(exc.__cause__, OSError) and exc.__cause__.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _store_error(exc.__cause__, desc) from None
            raise
        if self.origin is not None:
            locations.remember(desc.digest, *self.origin)

    def put_manifest(self, data: bytes, digest: str) -> None:
        self.image = store_manifest(data, self.tag)


def _store_error(exc: OSError, desc: Descriptor) -> ImageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ImageError(f"the disk holding the image store ({layout.root()}) is full: blob {desc.digest} "
                          f"({desc.size} bytes) did not fit",
                          hint="free some space (`sandbox image prune`) and pull again; nothing half was kept")
    return ImageError(f"cannot store blob {desc.digest}: {exc.strerror or exc}")


class StoreSource:
    """Push side: a stored image, its blobs read back and checked against their digests."""

    def __init__(self, image: StoredImage) -> None:
        self.image = image
        self.name = image.tags[0] if image.tags else image.id

    def manifest(self) -> tuple[bytes, str]:
        with self.open_blob(self.image.descriptor) as reader:
            data = reader.read()
        return data, self.image.id

    def open_blob(self, desc: Descriptor) -> BlobReader:
        return layout.open_blob(desc.digest, desc.size)
