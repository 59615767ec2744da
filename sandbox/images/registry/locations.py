"""Where a blob is known to be in registries, so a push can mount it instead of sending it.

A pull or a push records ``registry/repository`` for each blob it moved
(``locations/<hex of digest>``, one line each, appended); a later push to
another repository of the same registry asks for a cross-repository mount
from there first (distribution spec: ``POST .../blobs/uploads/?mount=&from=``).
A memo only: a wrong or stale line costs one request that falls back to an upload.
"""

from __future__ import annotations

import os

from .. import layout
from ..digest import encoded

_MAX_LINES = 64


def _path(digest: str):
    return layout.root() / "locations" / encoded(digest)


def known(digest: str, registry: str) -> list[str]:
    """The repositories of ``registry`` known to hold ``digest``, most recent first."""
    try:
        lines = _path(digest).read_text().splitlines()[-_MAX_LINES:]
    except OSError:
        return []
    prefix = registry + "/"
    return list(dict.fromkeys(line[len(prefix):] for line in reversed(lines) if line.startswith(prefix)))


def remember(digest: str, registry: str, repository: str) -> None:
    """Note that ``registry/repository`` holds ``digest``."""
    line = f"{registry}/{repository}"
    if repository in known(digest, registry)[:1]:
        return
    path = _path(digest)
    try:
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def forget_missing() -> int:
    """Drop the memos of blobs no longer stored (the sweep calls it); how many went."""
    top = layout.root() / "locations"
    count = 0
    for name in os.listdir(top) if top.is_dir() else ():
        if not (layout.root() / "blobs" / "sha256" / name).exists():
            (top / name).unlink(missing_ok=True)
            count += 1
    return count
