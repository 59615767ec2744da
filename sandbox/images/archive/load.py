"""`sandbox load`: the images of a docker-archive or an OCI image layout tar, into the store.

- An OCI layout (``oci-layout``, ``index.json``, ``blobs/``) is copied as a
  registry would be: ``copy.copy_image`` from an archive source, so every
  blob is checked against its digest and every layer against its diffID
  as it is unpacked (``layers.layer_from_blob``). An index entry that is
  itself an index is resolved to this host's platform.
- A docker-archive (``manifest.json``: Config, RepoTags, Layers; what
  ``docker save`` and ``podman save`` write) names no digests but the
  diffIDs in each config: each layer tar must unpack to its diffID, or
  nothing of that image is stored; the store writes an OCI manifest for it.

When an archive holds both (Docker 25 and later), ``manifest.json`` wins: its
RepoTags carry the full names. An image is tagged with the name the archive
gives it (RepoTags; the ref.name annotation when it is a whole NAME:TAG), or
the one given with ``--tag``; one without a name is refused, naming the fix.
"""

from __future__ import annotations

import io
import json
from typing import BinaryIO

from ...errors import ImageError
from .. import layout
from ..layers import Layer, is_unpacked, layer_from_tar
from ..oci import MEDIA_CONFIG, REF_NAME, ConfigDocument, Descriptor, Manifest
from ..reference import Reference, parse_reference
from ..refs import check_taggable
from ..registry.copy import copy_image
from ..registry.local import StoreDestination
from ..registry.manifests import check_digest, choose_platform, is_index, parse_document
from ..stored import StoredImage, store_manifest
from ..streams import BlobReader
from ..unpack import UnpackError
from .members import ArchiveMembers

CONTAINERD_NAME = "io.containerd.image.name"


def load_archive(stream: BinaryIO, source: str, *, tag: str | None = None) -> list[StoredImage]:
    """Store every image of the archive in ``stream``; the images, each with its tag."""
    given = parse_reference(tag) if tag else None
    if given is not None:
        check_taggable(given)
    with layout.writing(), layout.work_dir("load") as work:
        members = ArchiveMembers(stream, work, source)
        try:
            if members.has("manifest.json"):
                return _load_docker(members, given)
            if members.has("index.json") and members.has("oci-layout"):
                return _load_oci(members, given)
            raise ImageError(f"cannot load {source}: it holds neither manifest.json (a docker-archive) "
                             "nor oci-layout and index.json (an OCI image layout)")
        except UnpackError as exc:
            raise ImageError(f"cannot load {source}: {exc.message}") from exc
        finally:
            members.close()


def _name_for(names: list[str], given: Reference | None, count: int, what: str, source: str) -> list[Reference]:
    if given is not None:
        if count != 1:
            raise ImageError(f"cannot load {source}: --tag names one image, the archive holds {count}")
        return [given]
    refs = []
    for name in names:
        ref = parse_reference(name)
        check_taggable(ref)
        refs.append(ref)
    if not refs:
        raise ImageError(f"cannot load {source}: {what} has no name", hint="give it one with --tag NAME[:TAG]")
    return refs


# -- docker-archive -----------------------------------------------------------

def _load_docker(members: ArchiveMembers, given: Reference | None) -> list[StoredImage]:
    try:
        entries = json.loads(members.read("manifest.json"))
    except ValueError:
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ImageError(f"cannot load {members.source}: manifest.json is not a list of objects")
    loaded = []
    for i, entry in enumerate(entries):
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ImageError(f"cannot load {members.source}: manifest.json entry {i}: RepoTags is not a list of names")
        refs = _name_for(tags, given, len(entries), f"image {i} of manifest.json", members.source)
        loaded.extend(_load_docker_image(members, entry, refs, i))
    return loaded


def _load_docker_image(members: ArchiveMembers, entry: dict, refs: list[Reference], i: int) -> list[StoredImage]:
    config_name, layer_names = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list) or not all(
            isinstance(n, str) for n in layer_names):
        raise ImageError(f"cannot load {members.source}: manifest.json entry {i} needs Config and Layers")
    config_data = members.read(_member(config_name, members))
    config = ConfigDocument.from_json(parse_document(config_data, f"config {config_name}"))
    if len(config.diff_ids) != len(layer_names):
        raise ImageError(f"cannot load {members.source}: image {i} lists {len(layer_names)} layers, "
                         f"its config {len(config.diff_ids)} diffIDs")
    layers = [_docker_layer(members, name, diff_id) for name, diff_id in zip(layer_names, config.diff_ids)]
    config_digest, config_size = layout.put_blob(config_data)
    manifest = Manifest(Descriptor(MEDIA_CONFIG, config_digest, config_size),
                        tuple(layer.descriptor for layer in layers))
    data = json.dumps(manifest.to_json(), sort_keys=True, separators=(",", ":")).encode()
    return [store_manifest(data, ref) for ref in refs]


def _docker_layer(members: ArchiveMembers, name: str, diff_id: str) -> Layer:
    if is_unpacked(diff_id) and layout.has_blob(diff_id):
        return Layer(diff_id, diff_id, layout.blob_path(diff_id).stat().st_size)
    with members.open(_member(name, members)) as tar:
        return layer_from_tar(tar, diff_id=diff_id)


def _member(name: str, members: ArchiveMembers) -> str:
    from .members import clean

    return clean(name, members.source)


# -- OCI image layout -----------------------------------------------------------

class _ArchiveSource:
    """One image of an OCI layout tar, as a copy's Source."""

    def __init__(self, members: ArchiveMembers, desc: Descriptor, name: str) -> None:
        self.members = members
        self.desc = desc
        self.name = name

    def manifest(self) -> tuple[bytes, str]:
        desc = self.desc
        data = self._document(desc)
        if is_index(desc.media_type) or "manifests" in parse_document(data, f"manifest of {self.name}"):
            desc = choose_platform(parse_document(data, f"index of {self.name}"), self.name)
            data = self._document(desc)
        return data, desc.digest

    def _document(self, desc: Descriptor) -> bytes:
        data = self.members.read(_blob_name(desc.digest))
        check_digest(data, desc.digest, f"manifest {desc.digest} of {self.name}")
        return data

    def open_blob(self, desc: Descriptor) -> BlobReader:
        if desc.size != self.members.size(_blob_name(desc.digest)):
            raise ImageError(f"cannot load {self.members.source}: blob {desc.digest} has "
                             f"{self.members.size(_blob_name(desc.digest))} bytes, its descriptor says {desc.size}")
        return self.members.open(_blob_name(desc.digest))


def _blob_name(digest: str) -> str:
    from ..digest import encoded

    return f"blobs/sha256/{encoded(digest)}"


def _load_oci(members: ArchiveMembers, given: Reference | None) -> list[StoredImage]:
    index = parse_document(members.read("index.json"), f"index.json of {members.source}")
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ImageError(f"cannot load {members.source}: index.json has no manifests list")
    loaded = []
    for i, entry in enumerate(entries):
        desc = Descriptor.from_json(entry, f"index.json entry {i}")
        names = [n for n in (desc.annotations.get(CONTAINERD_NAME), desc.annotations.get(REF_NAME))
                 if n and (":" in n or "/" in n)][:1]
        refs = _name_for(names, given, len(entries), f"image {i} of index.json", members.source)
        source = _ArchiveSource(members, desc, f"image {i} of {members.source}")
        destination = StoreDestination(refs[0])
        copy_image(source, destination, progress=lambda event: None)
        image = destination.image or store_manifest(source.manifest()[0], refs[0])
        loaded.append(image)
    return loaded


def load_bytes(data: bytes, source: str = "archive", **kw) -> list[StoredImage]:
    """``load_archive`` of an archive held in memory (tests, small images)."""
    return load_archive(io.BytesIO(data), source, **kw)
