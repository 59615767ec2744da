"""Names and tags: index.json maps ``NAME:TAG`` to a manifest descriptor.

Each entry of the layout's image index carries the reference in its
``org.opencontainers.image.ref.name`` annotation (image-layout.md), so OCI
tools find an image by the name people give it. Readers read index.json
without a lock (it is only ever replaced whole, by rename); changes are a
read-modify-write under the index lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ..errors import ImageError
from . import layout
from .oci import CREATED, MANIFEST_TYPES, MEDIA_INDEX, MEDIA_MANIFEST, REF_NAME, Descriptor, now_rfc3339
from .reference import Reference, parse_reference


def read_index() -> dict[str, Descriptor]:
    """Every tagged manifest: ``"name:tag"`` -> its descriptor."""
    path = layout.root() / "index.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        doc = json.loads(raw)
        entries = doc["manifests"]
        if not isinstance(entries, list):
            raise TypeError("manifests is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"the image index {path} is damaged: {exc}") from None
    found = {}
    for i, entry in enumerate(entries):
        desc = Descriptor.from_json(entry, f"index.json entry {i}")
        name = desc.annotations.get(REF_NAME)
        if desc.media_type in MANIFEST_TYPES and name:
            found[str(parse_reference(name))] = desc
    return found


def update_index(change: Callable[[dict[str, Descriptor]], None]) -> None:
    """Apply ``change`` to the tags under the index lock and write index.json whole."""
    layout.ensure()
    with layout.index_lock():
        tags = read_index()
        change(tags)
        doc = {"schemaVersion": 2, "mediaType": MEDIA_INDEX,
               "manifests": [d.to_json() for _, d in sorted(tags.items())]}
        layout.write_atomic(layout.root() / "index.json", json.dumps(doc, indent=1).encode())


#: Names only the built-in images may have.
RESERVED = ("busybox", "host")


def check_taggable(ref: Reference, *, builtin: bool = False, pinned: bool = False) -> None:
    """ImageError unless ``ref`` is a NAME:TAG that a user may point somewhere
    (``pinned``: or a NAME@DIGEST, which a pull by digest records)."""
    if ref.tag is None and not pinned:
        raise ImageError(f"cannot tag {ref}: a tag is a NAME:TAG, not a digest")
    if ref.name in RESERVED and not builtin:
        raise ImageError(f"image name {ref.name!r} is reserved for the built-in image",
                         hint="choose another name")


def set_tag(ref: Reference, manifest_digest: str, size: int, *, replace: bool = True,
            builtin: bool = False, media_type: str = MEDIA_MANIFEST) -> None:
    """Point ``ref`` at a manifest; with ``replace=False`` an existing tag is an error.

    A NAME@DIGEST ``ref`` (a pull by digest) is recorded only for that digest.
    """
    check_taggable(ref, builtin=builtin, pinned=ref.digest == manifest_digest)
    desc = Descriptor(media_type, manifest_digest, size,
                      {REF_NAME: str(ref), CREATED: now_rfc3339()})

    def change(tags: dict[str, Descriptor]) -> None:
        if not replace and str(ref) in tags and tags[str(ref)].digest != manifest_digest:
            raise ImageError(f"image {ref} already exists", hint="use --replace, or another tag")
        tags[str(ref)] = desc

    update_index(change)


def remove_tag(ref: Reference) -> Descriptor:
    """Remove a tag; its former descriptor (ImageNotFound-free: the caller checked)."""
    removed: list[Descriptor] = []

    def change(tags: dict[str, Descriptor]) -> None:
        if str(ref) in tags:
            removed.append(tags.pop(str(ref)))

    update_index(change)
    if not removed:
        raise ImageError(f"image {ref} is not tagged")
    return removed[0]
