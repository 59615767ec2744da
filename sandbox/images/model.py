"""The Image value the engine consumes."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from .oci import ImageConfig


@dataclass(frozen=True)
class Image:
    """What a sandbox's root is made of, and what applies when it runs.

    ``layers``: the overlay's lower dirs, topmost first. ``links``: the same
    layers by short name, relative to ``link_base`` (for deep stacks on
    kernels without ``fsconfig(lowerdir+)``), or empty. ``host_dirs``: host
    directories shown at the same path, each under a writable overlay of its
    own (the ``host`` image and images built on it); the layers' own
    content under such a path lies over the host's. ``host_masks``: (host
    dir, mask dir) for the host dirs with secrets hidden below them
    (``hostmask``): the mask lies right above the host dir. ``env`` is the
    image's environment (its config's Env, or the host image's PATH).
    """

    name: str
    layers: tuple[str, ...]
    host_dirs: tuple[str, ...] = ()
    host_masks: tuple[tuple[str, str], ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    config: ImageConfig = field(default_factory=ImageConfig)
    id: str | None = None
    links: tuple[str, ...] = ()
    link_base: str | None = None
    size: int | None = None
    created: float | None = None

    def host_path(self, path: str) -> str | None:
        """Where the file the container will see at ``path`` lives on the host, if any.

        Host dirs cover layers; upper layers cover lower ones; a whiteout
        hides what lies below it. Symlinks inside the image are resolved
        within it.
        """
        from ..securejoin import secure_join, within

        for layer in self.layers:
            candidate = secure_join(layer, path)
            try:
                st = os.lstat(candidate)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None  # deleted in this layer
            return candidate
        for top in self.host_dirs:
            if within(path, top):
                rest = path[len(top.rstrip("/")):]
                for masked, mask in self.host_masks:
                    if masked == top and os.path.lexists(mask + rest):
                        return mask + rest
                candidate = top + rest
                return candidate if os.path.exists(candidate) else None
        return None

    def mask_for(self, host_dir: str) -> str | None:
        """The mask dir over ``host_dir``, if secrets below it are hidden."""
        return next((mask for top, mask in self.host_masks if top == host_dir), None)
