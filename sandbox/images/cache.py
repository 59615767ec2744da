"""The build cache: a manifest per cache key, kept until ``sandbox image prune``.

A builder computes a key per step (its parent, its instruction, the content
it copies) and stores the image the step made under it. Entries are files
``cache/<sha256 of key>`` holding the manifest's descriptor, written by
rename; a missing or damaged entry is a cache miss. Cached images are not
tagged, so `sandbox images` does not list them; the sweep keeps what they
reference until prune drops the entries.
"""

from __future__ import annotations

import hashlib
import json
import os

from ..errors import ImageError
from . import layout
from .oci import Descriptor


def _path(key: str):
    return layout.root() / "cache" / hashlib.sha256(key.encode()).hexdigest()


def put(key: str, manifest: Descriptor) -> None:
    """Remember that ``key`` made the image of ``manifest``."""
    layout.ensure()
    layout.write_atomic(_path(key), json.dumps(manifest.to_json()).encode())


def get(key: str) -> Descriptor | None:
    """The manifest cached under ``key``, if it is there and its blob still is."""
    try:
        desc = Descriptor.from_json(json.loads(_path(key).read_bytes()), "cache entry")
    except (OSError, ValueError, ImageError):
        return None
    return desc if layout.has_blob(desc.digest) else None


def entries() -> list[Descriptor]:
    """Every readable cache entry (for the sweep)."""
    found = []
    try:
        names = os.listdir(layout.root() / "cache")
    except FileNotFoundError:
        return []
    for name in names:
        try:
            found.append(Descriptor.from_json(json.loads((layout.root() / "cache" / name).read_bytes()),
                                              "cache entry"))
        except (OSError, ValueError, ImageError):
            continue
    return found


def clear() -> int:
    """Drop every entry; how many there were."""
    count = 0
    for name in os.listdir(layout.root() / "cache") if (layout.root() / "cache").is_dir() else ():
        os.unlink(layout.root() / "cache" / name)
        count += 1
    return count
