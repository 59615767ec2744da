"""Images: what a sandbox's root filesystem is made of, stored as OCI images.

For the engine, one call: ``get(ref) -> Image`` (lower dirs, host dirs,
runtime config). Everything else is the store, an OCI image layout under
``$SANDBOX_STATE_DIR/images`` (``layout`` draws it): blobs by digest, one
manifest and config per image, each layer unpacked once by diffID and shared,
tags in index.json. ``busybox`` is made on first use; ``host`` is a view of
this host with a throwaway writable layer.

The store API (what `sandbox build`, `commit` and `image import` use)::

    from sandbox import images

    with images.writing():                      # content made here is safe from prune
        base = images.lookup("busybox")         # StoredImage: id, manifest, config, layers
        layer = images.layer_from_upper(upper)  # an overlay upper dir -> Layer (diffID, blob)
        layer = images.layer_from_tar(stream)   # a tar stream (plain or compressed) -> Layer
        layer = images.layer_from_directory(fd) # a plain tree open by fd (COPY, import) -> Layer
        image = images.write_image([layer], config, base=base,       # or base="host" / None
                                   history=[{"created_by": "RUN make"}], tag="app:1")
    images.cache_put(key, image.descriptor); images.cache_get(key)   # build cache
    images.tag_image("app:1", "app:latest"); images.remove_image("app:1", force=False)
    images.prune() -> PruneReport; images.list_images() -> [StoredImage]
    images.pull_if_missing("registry.example/base:1")  # a build's FROM: pulled once if not stored

``ImageConfig`` is the runtime part of an image config (Env, Cmd,
Entrypoint, WorkingDir, User, Labels, ExposedPorts); a new image's config is
the whole of it (start from ``base.config.config``). A sandbox whose writable
layer should become a layer after it ends sets ``SandboxSpec.upper_dir`` (an
empty dir, best made with ``layout.work_dir``); ``rootfs.upper_parts(image,
upper_dir)`` says which upper dir holds which container path, for
``layer_from_upper``. A tag a user gives is checked early with
``refs.check_taggable(parse_reference(text))`` (busybox and host are reserved).

Every digest from outside is validated before it names a path and checked
as the bytes are read; layers are unpacked only by ``unpack`` (never outside
their root). Errors are ImageError / ImageNotFound, one line each.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ImageNotFound
from . import stored as _stored
from .builtin import BUILTIN, BUSYBOX_REFS, ensure_busybox, host_image
from .cache import get as cache_get
from .cache import put as cache_put
from .layers import Layer, layer_from_tar
from .layout import writing
from .model import Image
from .oci import ImageConfig
from .pack import layer_from_directory, layer_from_upper
from .reference import Reference, parse_reference
from .remove import PruneReport, prune, remove_image
from .stored import StoredImage, list_images, write_image

__all__ = [
    "BUILTIN",
    "Image",
    "ImageConfig",
    "Layer",
    "PruneReport",
    "Reference",
    "StoredImage",
    "cache_get",
    "cache_put",
    "get",
    "import_image",
    "layer_from_directory",
    "layer_from_tar",
    "layer_from_upper",
    "list_images",
    "lookup",
    "parse_reference",
    "prune",
    "pull_if_missing",
    "remove_image",
    "tag_image",
    "write_image",
    "writing",
]


def get(ref: str) -> Image:
    """The image ``ref`` names, ready to mount (busybox made on first use; a reference
    that names a registry pulled on first use, once however many ask at once)."""
    if ref == "host":
        return host_image()
    from .engine import engine_image

    try:
        return engine_image(ref)
    except ImageNotFound:
        from .registry import is_remote

        if not is_remote(ref):
            raise
    pull_if_missing(ref)
    return engine_image(ref)


def pull_if_missing(ref: str, **kw) -> StoredImage:
    """The stored image ``ref`` names; pulled first when it is not stored and names a
    registry (``host[:port]/repo[:tag]``), by one process while the others wait.

    What a build's ``FROM`` calls. ``progress=`` takes a callback
    (``registry.for_stream(sys.stderr)`` shows bars); ImageNotFound for a
    local name that is not stored.
    """
    if ref in BUSYBOX_REFS:
        ensure_busybox()
    from .registry import pull_if_missing as pull

    return pull(ref, **kw)


def lookup(ref: str) -> StoredImage:
    """The stored image ``ref`` names (``busybox`` made on first use); ImageNotFound if none."""
    if ref in BUSYBOX_REFS:
        ensure_busybox()
    return _stored.lookup(ref)


def tag_image(source: str, target: str) -> StoredImage:
    """Point ``target`` (NAME[:TAG]) at the image ``source`` names."""
    if source in BUSYBOX_REFS:
        ensure_busybox()
    return _stored.tag_image(source, target)


def import_image(source: str, ref: str, *, replace: bool = False) -> StoredImage:
    """A rootfs tarball or directory as a one-layer image tagged ``ref``."""
    from .importer import import_rootfs

    return import_rootfs(source, ref, replace=replace)


def import_image_archive(stream: Any, ref: str, *, name: str, replace: bool = False) -> StoredImage:
    """A rootfs tarball read from ``stream`` as a one-layer image tagged ``ref`` (as
    ``import_image`` of an archive; ``name``: the source as its sender named it)."""
    from .importer import import_archive

    return import_archive(stream, ref, name=name, replace=replace)


def names() -> list[str]:
    return sorted(set(BUILTIN) | {t for i in list_images() for t in i.tags})


def store_path() -> str:
    from .layout import root

    return os.fspath(root())
