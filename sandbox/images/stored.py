"""Stored images: look one up by reference, list them, write a new one, tag it.

A StoredImage is a manifest read back from the store with its config: its
id is the manifest's digest (what a tag points at, what `sandbox images`
shows 12 digits of). ``write_image`` is how every new image comes to be (an
import, a commit, each step of a build): it writes the config and the
manifest as blobs and, if asked, points a tag at the manifest. The layers it
names must already be stored (``layers.layer_from_tar``,
``pack.layer_from_upper``).
"""

from __future__ import annotations

import calendar
import json
import re
import time
from dataclasses import dataclass

from ..errors import ImageError, ImageNotFound
from . import layout, refs
from .digest import parse_digest
from .layers import Layer, unpack_blob
from .oci import (
    BASE,
    CONFIG_TYPES,
    MEDIA_CONFIG,
    MEDIA_MANIFEST,
    ConfigDocument,
    Descriptor,
    ImageConfig,
    Manifest,
    now_rfc3339,
)
from .reference import Reference, parse_reference


@dataclass(frozen=True)
class StoredImage:
    """An image in the store: its manifest (by digest), config and layers."""

    id: str
    manifest: Manifest
    config: ConfigDocument
    size: int
    tags: tuple[str, ...] = ()

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Lowest first, as the manifest lists them."""
        return tuple(Layer(diff_id, d.digest, d.size, d.media_type)
                     for diff_id, d in zip(self.config.diff_ids, self.manifest.layers))

    @property
    def base(self) -> str | None:
        """``host`` for an image whose layers lie over the host view; else None."""
        return self.manifest.annotations.get(BASE)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.manifest.media_type, self.id, self.size)

    @property
    def created(self) -> float | None:
        try:
            return float(calendar.timegm(time.strptime(self.config.created[:19], "%Y-%m-%dT%H:%M:%S")))
        except ValueError:
            return None


def load(desc: Descriptor, tags: tuple[str, ...] = ()) -> StoredImage:
    """Read and check the manifest a descriptor points at, and its config."""
    manifest = Manifest.from_json(layout.read_document(desc.digest, desc.size, what="manifest"))
    if manifest.config.media_type not in CONFIG_TYPES:
        raise ImageError(f"manifest {desc.digest}: config media type "
                         f"{manifest.config.media_type!r} is not an image config")
    config = ConfigDocument.from_json(layout.read_document(
        manifest.config.digest, manifest.config.size, what="image config"))
    if len(config.diff_ids) != len(manifest.layers):
        raise ImageError(f"manifest {desc.digest} lists {len(manifest.layers)} layers, "
                         f"its config {len(config.diff_ids)} diffIDs")
    return StoredImage(desc.digest, manifest, config, desc.size, tags)


def load_id(image_id: str) -> StoredImage:
    """The stored image whose manifest is the blob ``image_id``, where no descriptor gives
    its size (a sandbox's record names only the id): the size is the stored blob's."""
    try:
        size = layout.blob_path(image_id).stat().st_size
    except FileNotFoundError:
        raise ImageError(f"manifest {image_id} is missing from the store",
                         hint="the store is damaged: remove the image and import it again") from None
    return load(Descriptor(MEDIA_MANIFEST, image_id, size))


def list_images() -> list[StoredImage]:
    """Every tagged image, one entry per image id with all its tags."""
    by_id: dict[str, list[tuple[str, Descriptor]]] = {}
    for name, desc in refs.read_index().items():
        by_id.setdefault(desc.digest, []).append((name, desc))
    found = []
    for items in by_id.values():
        try:
            found.append(load(items[0][1], tuple(sorted(n for n, _ in items))))
        except ImageError:
            continue  # a damaged entry: `sandbox image inspect` names the damage
    return sorted(found, key=lambda i: i.tags)


def lookup(text: str | Reference) -> StoredImage:
    """The stored image a reference names: ``NAME[:TAG]``, ``NAME@DIGEST``, or an id (prefix)."""
    ref = text if isinstance(text, Reference) else _parse_or_id(text)
    tags = refs.read_index()
    if isinstance(ref, str):  # an image id or a unique prefix of one
        ids = {d.digest: d for d in tags.values() if d.digest.startswith(ref)}
        if len(ids) == 1:
            desc = next(iter(ids.values()))
            return load(desc, tuple(sorted(n for n, d in tags.items() if d.digest == desc.digest)))
        if len(ref) == 71 and layout.has_blob(ref):  # a whole id, untagged: a build step's image
            return load_id(ref)
        raise ImageNotFound(text if isinstance(text, str) else str(text), _known(tags))
    if ref.digest:
        for name, desc in tags.items():
            if desc.digest == ref.digest and (name == str(ref) or name.rsplit(":", 1)[0] == ref.name):
                return load(desc, (name,))
        raise ImageNotFound(str(ref), _known(tags))
    named = tags.get(str(ref))
    if named is None:
        raise ImageNotFound(str(text), _known(tags))
    return load(named, tuple(sorted(n for n, d in tags.items() if d.digest == named.digest)))


_ID_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{12,64})$")


def _known(tags: dict) -> list[str]:
    """The names to suggest: the built-ins and every tag (``:latest`` left out)."""
    return sorted({"busybox", "host"} | {n.removesuffix(":latest") for n in tags})


def _parse_or_id(text: str) -> Reference | str:
    """An image id (or a 12+ digit prefix of one) if a tagged image has it, or a whole id
    of an untagged image (the build cache's), else a reference."""
    match = _ID_RE.match(text)
    if match and any(d.digest.startswith("sha256:" + match.group(1))
                     for d in refs.read_index().values()):
        return "sha256:" + match.group(1)
    if match and len(match.group(1)) == 64 and layout.has_blob("sha256:" + match.group(1)):
        return "sha256:" + match.group(1)
    return parse_reference(text)


def write_image(layers: tuple[Layer, ...] | list[Layer], config: ImageConfig, *,
                base: StoredImage | str | None = None, history: tuple[dict, ...] | list[dict] = (),
                tag: str | Reference | None = None, created: str | None = None,
                replace: bool = True, builtin: bool = False) -> StoredImage:
    """Write a config and a manifest for ``base``'s layers plus ``layers``; tag it if asked.

    ``base``: a StoredImage (its layers and history come first), ``"host"``
    (the layers lie over the host view), or None (``scratch``). ``config``
    is the whole runtime config of the new image (a builder starts from the
    base's, ``base.config.config``). ``history``: one entry per step, as
    config.md has them (``created_by``, ``empty_layer``...), appended to the
    base's. ``replace=False``: an existing ``tag`` is an error, not moved.
    A reserved name (busybox, host) is refused unless ``builtin``. Returns
    the new image (its id is the manifest digest).
    """
    base_layers: tuple[Layer, ...] = base.layers if isinstance(base, StoredImage) else ()
    base_history = base.config.history if isinstance(base, StoredImage) else ()
    base_name = base.base if isinstance(base, StoredImage) else base
    if base_name not in (None, "host"):
        raise ImageError(f"invalid base {base_name!r}: a stored image, 'host' or None")
    all_layers = (*base_layers, *layers)
    when = created or now_rfc3339()
    history = [{"created": when, **entry} for entry in history]
    document = ConfigDocument(config, tuple(layer.diff_id for layer in all_layers),
                              (*base_history, *history), when)
    with layout.writing():
        config_digest, config_size = layout.put_blob(_canonical(document.to_json()))
        manifest = Manifest(Descriptor(MEDIA_CONFIG, config_digest, config_size),
                            tuple(layer.descriptor for layer in all_layers),
                            {BASE: "host"} if base_name == "host" else {})
        digest, size = layout.put_blob(_canonical(manifest.to_json()))
        if tag is not None:
            ref = tag if isinstance(tag, Reference) else parse_reference(tag)
            refs.set_tag(ref, digest, size, replace=replace, builtin=builtin)
    return load(Descriptor(MEDIA_MANIFEST, digest, size), (str(tag),) if tag else ())


def store_manifest(data: bytes, tag: Reference | None = None) -> StoredImage:
    """Store a manifest from outside (a pull, an archive) as it is, and tag it if asked.

    Its config and layers must be stored already: the manifest is read back
    and checked (``load``) before the tag names it. The image's id is the
    digest of ``data``, the one its registry or archive names.
    """
    if len(data) > layout.MAX_DOCUMENT:
        raise ImageError(f"a manifest of {len(data)} bytes: at most {layout.MAX_DOCUMENT} accepted")
    with layout.writing():
        digest, size = layout.put_blob(data)
        image = load(Descriptor(MEDIA_MANIFEST, digest, size))
        if tag is not None:
            refs.set_tag(tag, digest, size, media_type=image.manifest.media_type)
    return StoredImage(image.id, image.manifest, image.config, image.size,
                       (str(tag),) if tag is not None else ())


def tag_image(source: str, target: str) -> StoredImage:
    """Point the reference ``target`` at the image ``source`` names."""
    image = lookup(source)
    ref = parse_reference(target)
    if ref.digest:
        raise ImageError(f"cannot tag {target!r}: expected NAME[:TAG]")
    refs.set_tag(ref, image.id, image.size, media_type=image.manifest.media_type)
    return image


def ensure_unpacked(image: StoredImage) -> None:
    """Unpack any of the image's layers that are only blobs (pulled, or removed by hand)."""
    for layer in image.layers:
        unpack_blob(layer.descriptor, layer.diff_id)


def _canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


__all__ = [
    "StoredImage",
    "ensure_unpacked",
    "list_images",
    "load",
    "lookup",
    "parse_digest",
    "store_manifest",
    "tag_image",
    "write_image",
]
