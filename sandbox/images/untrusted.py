"""Untrusted trees and archives copied into a directory, for the packages built on the engine.

A job's workspace comes from whoever submitted the job: it takes the same
path as an image's layer (``unpack.apply_entry``): nothing is written outside
the directory, no link is followed, device nodes are refused, and the
amount is bounded.
"""

from __future__ import annotations

import io

from .tree import walk_directory
from .unpack import Bounds, Target, walk


def copy_tree_into(source_fd: int, directory: str, *, exclude: tuple[str, ...] = (),
                   max_members: int | None = None, max_bytes: int | None = None) -> None:
    """Copy the tree open at ``source_fd`` into ``directory`` (UnpackError on a bad entry,
    or past ``max_members`` entries or ``max_bytes`` of file content when given)."""
    bounds = Bounds()
    if max_members is not None or max_bytes is not None:
        bounds = Bounds(members=max_members or bounds.members, bytes=max_bytes or bounds.bytes)
    with Target(directory, bounds=bounds) as target:
        walk_directory(source_fd, target, exclude=exclude)


def unpack_tar_into(data: bytes, directory: str, *, max_members: int, max_bytes: int) -> None:
    """Unpack a (compressed) tar held in ``data`` into ``directory``, bounded in members
    and bytes (UnpackError on a bad member or past a bound)."""
    with Target(directory, bounds=Bounds(members=max_members, bytes=max_bytes)) as target:
        walk(io.BytesIO(data), target)
