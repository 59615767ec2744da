"""`sandbox save`: stored images as a docker-archive or an OCI image layout tar.

- ``docker-archive`` (the default; what ``docker save`` writes and ``docker
  load``, ``podman load`` and skopeo read): ``manifest.json`` (Config,
  RepoTags, Layers per image), ``repositories``, each config as
  ``<hex>.json`` and each layer as an uncompressed ``<hex of diffID>/layer.tar``
  (a layer stored compressed, as pulled, is decompressed through a work file).
- ``oci`` (an OCI image layout, as ``skopeo copy ... oci-archive:`` writes):
  ``oci-layout``, ``index.json`` naming each image (``org.opencontainers.image.ref.name``
  is the whole NAME:TAG), and ``blobs/sha256/`` with the blobs as stored; a
  Docker schema 2 manifest (pulled) is written as the equivalent OCI manifest.

Layers shared by several images are written once. Every blob is read back
through its digest check. The tar is written as a stream (a file or
standard output) with fixed owners and times, so the same images make the
same archive.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import BinaryIO

from ...errors import ImageError
from .. import layout
from ..compression import decompressed
from ..digest import Digester, encoded
from ..oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    REF_NAME,
    Descriptor,
)
from ..reference import parse_reference
from ..stored import StoredImage, lookup

FORMATS = ("docker-archive", "oci")


def save_images(refs: list[str], out: BinaryIO, *, fmt: str = "docker-archive") -> list[StoredImage]:
    """Write the images ``refs`` name to ``out`` as one archive of format ``fmt``."""
    if fmt not in FORMATS:
        raise ImageError(f"invalid format {fmt!r}: expected {' or '.join(FORMATS)}")
    if not refs:
        raise ImageError("nothing to save: name at least one image")
    images = [lookup(ref) for ref in refs]
    names = [_name_of(ref, image) for ref, image in zip(refs, images)]
    with layout.writing(), tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if fmt == "oci":
            _write_oci(tar, images, names)
        else:
            _write_docker(tar, images, names)
    return images


def _name_of(ref: str, image: StoredImage) -> str | None:
    """The NAME:TAG an image is saved under: the one asked for, if it is a tag (not an id)."""
    try:
        name = str(parse_reference(ref))
    except ImageError:
        return None
    return name if name in image.tags else None


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _info(name, len(data))
    tar.addfile(info, io.BytesIO(data))


def _info(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, 0o644 if kind == tarfile.REGTYPE else 0o755, 0
    return info


def _add_blob(tar: tarfile.TarFile, name: str, desc: Descriptor) -> None:
    with layout.open_blob(desc.digest, desc.size) as reader:
        tar.addfile(_info(name, desc.size), reader)
        reader.drain()


# -- OCI image layout -----------------------------------------------------------

def _write_oci(tar: tarfile.TarFile, images: list[StoredImage], names: list[str | None]) -> None:
    _add_bytes(tar, "oci-layout", json.dumps(layout.LAYOUT_VERSION).encode())
    tar.addfile(_info("blobs", 0, tarfile.DIRTYPE))
    tar.addfile(_info("blobs/sha256", 0, tarfile.DIRTYPE))
    written: set[str] = set()
    entries = []
    for image, name in zip(images, names):
        for desc in (image.manifest.config, *image.manifest.layers):
            if desc.digest not in written:
                _add_blob(tar, f"blobs/sha256/{encoded(desc.digest)}", desc)
                written.add(desc.digest)
        data = _oci_manifest(image)
        digester = Digester()
        digester.update(data)
        if digester.digest not in written:
            _add_bytes(tar, f"blobs/sha256/{encoded(digester.digest)}", data)
            written.add(digester.digest)
        entry = Descriptor(MEDIA_MANIFEST, digester.digest, len(data), {REF_NAME: name} if name else {})
        entries.append(entry.to_json())
    _add_bytes(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                              "manifests": entries}).encode())


def _oci_manifest(image: StoredImage) -> bytes:
    """The stored manifest's bytes; a Docker schema 2 one as the same manifest in OCI media types."""
    with layout.open_blob(image.id, image.size, what="manifest") as reader:
        data = reader.read()
    if image.manifest.media_type == MEDIA_MANIFEST:
        return data
    doc = json.loads(data)
    doc["mediaType"] = MEDIA_MANIFEST
    if doc["config"].get("mediaType") == DOCKER_CONFIG:
        doc["config"]["mediaType"] = MEDIA_CONFIG
    for layer in doc["layers"]:
        if layer.get("mediaType") == DOCKER_LAYER:
            layer["mediaType"] = MEDIA_LAYER + "+gzip"
    return json.dumps(doc, separators=(",", ":")).encode()


# -- docker-archive -----------------------------------------------------------

def _write_docker(tar: tarfile.TarFile, images: list[StoredImage], names: list[str | None]) -> None:
    written: set[str] = set()
    entries: list[dict[str, object]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image, name in zip(images, names):
        config = image.manifest.config
        config_name = f"{encoded(config.digest)}.json"
        if config_name not in written:
            _add_blob(tar, config_name, config)
            written.add(config_name)
        layer_names = []
        for layer in image.layers:
            layer_name = f"{encoded(layer.diff_id)}/layer.tar"
            if layer_name not in written:
                tar.addfile(_info(encoded(layer.diff_id), 0, tarfile.DIRTYPE))
                _add_layer_tar(tar, layer_name, layer)
                written.add(layer_name)
            layer_names.append(layer_name)
        entries.append({"Config": config_name, "RepoTags": [name] if name else [], "Layers": layer_names})
        if name and image.layers:
            repo, _, tag = name.rpartition(":")
            repositories.setdefault(repo, {})[tag] = encoded(image.layers[-1].diff_id)
    _add_bytes(tar, "manifest.json", json.dumps(entries).encode())
    _add_bytes(tar, "repositories", json.dumps(repositories).encode())


def _add_layer_tar(tar: tarfile.TarFile, name: str, layer) -> None:
    """The layer as an uncompressed tar (its diffID); a compressed blob decompressed first."""
    if layer.digest == layer.diff_id:
        _add_blob(tar, name, layer.descriptor)
        return
    with layout.work_dir("save") as work:
        plain = Path(work) / "layer.tar"
        digester = Digester()
        with layout.open_blob(layer.digest, layer.size, what="layer") as reader, open(plain, "wb") as out:
            stream = decompressed(reader)
            while chunk := stream.read(1 << 20):
                digester.update(chunk)
                out.write(chunk)
            reader.drain()
        if digester.digest != layer.diff_id:
            raise ImageError(f"layer {layer.digest} decompresses to {digester.digest}, not its diffID "
                             f"{layer.diff_id}", hint="the store is damaged: remove the image and pull it again")
        with open(plain, "rb") as f:
            tar.addfile(_info(name, digester.size), f)


