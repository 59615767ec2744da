"""Removing images: `sandbox rmi`, `sandbox image prune`, and the sweep under `sandbox gc`.

Removing an image removes its tag; its content goes in the sweep that
follows, which deletes every blob and unpacked layer that nothing needs:
neither a tag, nor a build cache entry, nor a live sandbox (its record names
the image id it mounts). The sweep holds the content lock exclusive, so no
import, build or starting sandbox is between writing content and naming it.
`rmi` refuses to remove the last tag of an image a live sandbox uses,
unless forced; then the tag goes and the content stays until that sandbox
has ended.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import state
from ..errors import ImageError
from . import cache, layout, refs
from .digest import encoded, parse_digest
from .oci import MEDIA_MANIFEST, Descriptor
from .stored import StoredImage, load, load_id, lookup


@dataclass
class PruneReport:
    """What a sweep removed and how many bytes of disk that freed."""

    blobs: int = 0
    layers: int = 0
    work_dirs: int = 0
    cache_entries: int = 0
    freed: int = 0
    errors: list[str] = field(default_factory=list)


def users_of(image_id: str) -> list[str]:
    """Ids of the live sandboxes whose root is this image."""
    users = []
    for sdir, record in state.iter_records():
        if record is not None and record.owner_alive and getattr(record, "image_id", None) == image_id:
            users.append(sdir.id)
    return users


def remove_image(ref: str, *, force: bool = False) -> tuple[StoredImage, PruneReport]:
    """Untag ``ref`` (or every tag of an image id) and sweep what nothing needs any more."""
    image = lookup(ref)
    named = [t for t in image.tags if t == str(_ref_or_none(ref))] or list(image.tags)
    users = users_of(image.id) if set(image.tags) <= set(named) else []  # its last tag goes
    if users and not force:
        raise ImageError(f"image {ref} is in use by sandbox {', '.join(users)}",
                         hint="remove the sandbox first, or use -f to untag it anyway")
    for tag in named:
        refs.remove_tag(refs.parse_reference(tag))
    return image, sweep()


def _ref_or_none(text: str):
    try:
        return refs.parse_reference(text)
    except ImageError:
        return None


def prune() -> PruneReport:
    """Drop the build cache, then sweep: what no tag and no live sandbox needs goes."""
    with layout.sweeping():
        count = cache.clear()
        report = _sweep()
    report.cache_entries = count
    return report


def sweep(*, wait: bool = True) -> PruneReport:
    """Delete unreferenced blobs and layers and dead work dirs (keeps the build cache).

    ``wait=False`` (for `sandbox gc`): skip the sweep when a writer is busy.
    """
    if not (layout.root() / "index.json").exists():
        return PruneReport()
    if not wait:
        import fcntl

        fd = os.open(layout.root() / "locks" / "content", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return PruneReport(errors=["the image store is busy (an import or build runs): "
                                       "not swept this time"])
        try:
            return _sweep()
        finally:
            os.close(fd)
    with layout.sweeping():
        return _sweep()


def _sweep() -> PruneReport:
    report = PruneReport()
    for work in layout.stale_work_dirs():
        report.freed += disk_usage(work)
        layout.remove_tree(work)
        report.work_dirs += 1
    blobs, diff_ids = _needed(report)
    top = layout.root()
    for name in _listdir(top / "blobs" / "sha256"):
        if name not in blobs:
            path = top / "blobs" / "sha256" / name
            report.freed += disk_usage(path)
            path.unlink()
            report.blobs += 1
    for name in _listdir(top / "layers"):
        if name not in diff_ids:
            _remove_layer(top / "layers" / name, report)
    for name in _listdir(top / "l"):
        if not os.path.exists(top / "l" / name):
            (top / "l" / name).unlink()
    from .registry.locations import forget_missing

    forget_missing()
    return report


def _needed(report: PruneReport) -> tuple[set[str], set[str]]:
    """The hex names of the blobs and layers some tag, cache entry or live sandbox needs."""
    roots: list[Descriptor] = list(refs.read_index().values()) + cache.entries()
    for _, record in state.iter_records():
        image_id = getattr(record, "image_id", None) if record is not None else None
        if image_id:
            try:
                roots.append(Descriptor(MEDIA_MANIFEST, parse_digest(image_id), -1))
            except ImageError:
                continue
    blobs: set[str] = set()
    diff_ids: set[str] = set()
    for desc in roots:
        try:
            image = load(desc) if desc.size >= 0 else load_id(desc.digest)
        except ImageError as exc:
            blobs.add(encoded(desc.digest))  # keep what we cannot read: never guess
            report.errors.append(str(exc))
            continue
        blobs.update(encoded(d) for d in (image.id, image.manifest.config.digest))
        for layer in image.layers:
            blobs.add(encoded(layer.digest))
            diff_ids.add(encoded(layer.diff_id))
    return blobs, diff_ids


def _remove_layer(path: Path, report: PruneReport) -> None:
    try:
        link = (path / "link").read_text().strip()
        if len(link) == 10 and link.isalnum():
            (layout.root() / "l" / link).unlink(missing_ok=True)
    except OSError:
        pass
    report.freed += disk_usage(path)
    layout.remove_tree(path)
    report.layers += 1


def disk_usage(path: Path) -> int:
    """Bytes of disk a file or tree takes (st_blocks), never following links; hard links once."""
    total, seen = 0, set()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return st.st_blocks * 512
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _listdir(path: Path) -> list[str]:
    try:
        return [n for n in os.listdir(path) if not n.startswith(".")]
    except FileNotFoundError:
        return []
