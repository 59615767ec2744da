"""The Image value the engine consumes."""

from __future__ import annotations

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
