"""The Image value the engine consumes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageBind:
    """A host path shown read-only at the same path inside the container."""

    source: str
    target: str


@dataclass(frozen=True)
class Image:
    """Read-only lower directories (topmost first), host binds and defaults."""

    name: str
    layers: tuple[str, ...]
    binds: tuple[ImageBind, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    created: float | None = None

    def host_path(self, path: str) -> str | None:
        """Where the file the container will see at ``path`` lives on the host, if any.

        Binds cover layers; upper layers cover lower ones. Symlinks inside the
        image are resolved within it.
        """
        from ..securejoin import secure_join

        for bind in self.binds:
            if path == bind.target or path.startswith(bind.target.rstrip("/") + "/"):
                candidate = bind.source + path[len(bind.target.rstrip("/")):]
                return candidate if os.path.exists(candidate) else None
        for layer in self.layers:
            candidate = secure_join(layer, path)
            if os.path.lexists(candidate):
                return candidate
        return None
