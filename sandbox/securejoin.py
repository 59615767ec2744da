"""Paths inside a root filesystem, resolved as if that root were ``/``."""

from __future__ import annotations

import os
import stat

MAX_LINK_HOPS = 40


def within(path: str, top: str) -> bool:
    """True when ``path`` is ``top`` or below it (both absolute and normalized; no link is
    followed)."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def secure_join(root: str, path: str) -> str:
    """``root/path`` with every symlink resolved as if root were ``/``.

    A path inside an image must never lead out of it through a symlink such
    as ``/work -> /etc`` or ``up -> ../../..``: links are resolved by hand,
    clamped at root. Only for trees nobody changes meanwhile (an image's
    layers, or a container's root before its command starts).
    """
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved) if resolved else root
