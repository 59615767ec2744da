"""A stored image as the engine mounts it: lower dirs topmost first, short links, config.

Looked up once per process while index.json is unchanged: the pytest plugin
and workers ask for the same image for every sandbox.
"""

from __future__ import annotations

import os

from . import layout
from .builtin import BUSYBOX_REFS, ensure_busybox, host_image
from .layers import short_link, unpacked_size
from .legacy import migrate_if_needed
from .model import Image
from .stored import StoredImage, ensure_unpacked, lookup

_CACHE: dict[str, tuple[tuple, Image]] = {}


def engine_image(ref: str) -> Image:
    """The Image for ``ref``, its layers unpacked; ImageNotFound if there is none."""
    migrate_if_needed()
    seen = _identity(layout.root() / "index.json")
    cached = _CACHE.get(ref)
    if cached and cached[0] == seen and os.path.isdir(cached[1].layers[0]):
        return cached[1]
    if ref in BUSYBOX_REFS:
        ensure_busybox()
    stored = lookup(ref)
    ensure_unpacked(stored)
    image = to_image(stored, ref)
    _CACHE[ref] = (seen, image)
    return image


def to_image(stored: StoredImage, name: str) -> Image:
    """The engine's view of a stored image (its layers must be unpacked)."""
    top_first = tuple(reversed(stored.layers))
    layers = tuple(layer.path for layer in top_first)
    links = tuple(short_link(layer.diff_id) for layer in top_first)
    config = stored.config.config
    env = config.env_dict()
    host_dirs: tuple[str, ...] = ()
    host_masks: tuple[tuple[str, str], ...] = ()
    if stored.base == "host":
        host = host_image()
        layers += host.layers
        links += ("host/rootfs",)
        host_dirs, host_masks = host.host_dirs, host.host_masks
        env = {**host.env, **env}
    if not layers:  # FROM scratch and nothing added: an empty root
        empty = layout.root() / "empty"
        empty.mkdir(mode=0o755, exist_ok=True)
        layers, links = (str(empty),), ("empty",)
    size = sum(unpacked_size(layer.diff_id) for layer in stored.layers)
    return Image(name, layers, host_dirs=host_dirs, host_masks=host_masks, env=env, config=config,
                 id=stored.id,
                 links=links, link_base=str(layout.root()), size=size, created=stored.created)


def _identity(path: os.PathLike) -> tuple:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ()
    return (st.st_ino, st.st_mtime_ns, st.st_size)
