"""Images: what a sandbox's root filesystem is made of.

One small interface, ``get(name) -> Image``: an Image is a stack of read-only
lower directories (topmost first) plus read-only host binds. The overlay in
``rootfs`` needs nothing else, so a layered, content-addressed store can take
the place of the directory store without touching the engine.

Known names: ``busybox`` (made from Debian's busybox-static on first use),
``host`` (a read-only view of the host's toolchains) and any name imported
with ``sandbox image import PATH NAME``.
"""

from __future__ import annotations

from .builtin import BUILTIN, busybox_image, host_image
from .model import Image, ImageBind
from .store import import_image, list_images, remove_image, stored_image

__all__ = ["Image", "ImageBind", "get", "import_image", "list_images", "remove_image"]


def get(name: str) -> Image:
    """The image called ``name``, made on first use for the built-in ones."""
    if name == "busybox":
        return busybox_image()
    if name == "host":
        return host_image()
    return stored_image(name)


def names() -> list[str]:
    return sorted(set(BUILTIN) | {i.name for i in list_images()})
