"""The OCI documents the store writes and reads: descriptors, manifests, configs.

Shapes from the image spec (descriptor.md, manifest.md, config.md). What is
read back is untrusted (an index entry, a manifest from an archive): every
field the store uses is type-checked here and digests are validated, so the
rest of the store handles only well-formed values. Unknown fields are kept
where they are passed through, and ignored otherwise.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ImageError
from .digest import parse_digest

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
#: Docker's image manifest schema 2, its manifest list, config and layer types (kept as
#: the registry serves them, so a pulled image's id is the digest the registry names).
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (MEDIA_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_INDEX, DOCKER_MANIFEST_LIST)
CONFIG_TYPES = (MEDIA_CONFIG, DOCKER_CONFIG)
LAYER_MEDIA_TYPES = (MEDIA_LAYER, MEDIA_LAYER + "+gzip", MEDIA_LAYER + "+zstd", DOCKER_LAYER)
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"
#: On a manifest: "host" for an image whose layers lie over the host view, not a rootfs.
BASE = "sandbox.image.base"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "riscv64": "riscv64",
         "ppc64le": "ppc64le", "s390x": "s390x", "i686": "386"}


def now_rfc3339(when: float | None = None) -> str:
    """A timestamp as the spec writes them (RFC 3339, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if when is None else when))


@dataclass(frozen=True)
class Descriptor:
    """A pointer to a blob: media type, digest, size, annotations (descriptor.md)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, doc: object, what: str) -> "Descriptor":
        if not isinstance(doc, dict):
            raise ImageError(f"{what}: expected a descriptor object")
        media_type, size = doc.get("mediaType"), doc.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ImageError(f"{what}: the descriptor has no mediaType")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"{what}: the descriptor's size {size!r} is not a byte count")
        annotations = doc.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
            raise ImageError(f"{what}: annotations must map strings to strings")
        return cls(media_type, parse_digest(doc.get("digest"), what=f"{what} digest"), size,
                   annotations)


@dataclass(frozen=True)
class ImageConfig:
    """What applies when the image runs: config.md's ``config`` object.

    ``env`` holds ``NAME=value`` strings in order, as the spec does.
    """

    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str = ""

    def env_dict(self) -> dict[str, str]:
        out = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        pairs: tuple[tuple[str, object], ...] = (("User", self.user), ("Env", list(self.env)),
                 ("Entrypoint", list(self.entrypoint) or None), ("Cmd", list(self.cmd) or None),
                 ("WorkingDir", self.workdir), ("Labels", dict(self.labels)),
                 ("ExposedPorts", {p: {} for p in self.exposed_ports}),
                 ("StopSignal", self.stop_signal))
        for key, value in pairs:
            if value:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, doc: object) -> "ImageConfig":
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise ImageError("image config: 'config' must be an object")
        ports = doc.get("ExposedPorts") or {}
        if not isinstance(ports, dict):
            raise ImageError("image config: ExposedPorts must be an object")
        return cls(env=_strings(doc.get("Env"), "Env"), entrypoint=_strings(doc.get("Entrypoint"), "Entrypoint"),
                   cmd=_strings(doc.get("Cmd"), "Cmd"), workdir=_string(doc.get("WorkingDir"), "WorkingDir"),
                   user=_string(doc.get("User"), "User"), labels=_labels(doc.get("Labels")),
                   exposed_ports=tuple(str(p) for p in ports), stop_signal=_string(doc.get("StopSignal"), "StopSignal"))


@dataclass(frozen=True)
class ConfigDocument:
    """A whole image config (config.md): runtime config, diffIDs, history, when."""

    config: ImageConfig
    diff_ids: tuple[str, ...]
    history: tuple[dict[str, Any], ...] = ()
    created: str = ""
    architecture: str = ""
    os: str = "linux"

    def to_json(self) -> dict[str, Any]:
        return {"created": self.created or now_rfc3339(),
                "architecture": self.architecture or _ARCH.get(os.uname().machine, os.uname().machine),
                "os": self.os, "config": self.config.to_json(),
                "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
                "history": [dict(h) for h in self.history]}

    @classmethod
    def from_json(cls, doc: dict) -> "ConfigDocument":
        rootfs = doc.get("rootfs")
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
            raise ImageError("image config: rootfs must be {\"type\": \"layers\", ...}")
        ids = rootfs.get("diff_ids")
        if not isinstance(ids, list):
            raise ImageError("image config: rootfs.diff_ids must be a list")
        history = doc.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise ImageError("image config: history must be a list of objects")
        return cls(ImageConfig.from_json(doc.get("config")),
                   tuple(parse_digest(d, what="diffID") for d in ids), tuple(history),
                   _string(doc.get("created"), "created"), _string(doc.get("architecture"), "architecture"),
                   _string(doc.get("os"), "os") or "linux")


@dataclass(frozen=True)
class Manifest:
    """An image manifest (manifest.md): its config and layers, lowest first."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    media_type: str = MEDIA_MANIFEST

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type,
                               "config": self.config.to_json(),
                               "layers": [d.to_json() for d in self.layers]}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, doc: dict) -> "Manifest":
        if doc.get("schemaVersion") != 2:
            raise ImageError("manifest: schemaVersion must be 2")
        media_type = doc.get("mediaType", MEDIA_MANIFEST)
        if media_type not in MANIFEST_TYPES:
            raise ImageError(f"manifest: media type {media_type!r} is not an image manifest "
                             f"(accepted: {', '.join(MANIFEST_TYPES)})")
        config = Descriptor.from_json(doc.get("config"), "manifest config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ImageError("manifest: layers must be a list")
        descs = tuple(Descriptor.from_json(d, f"manifest layer {i}") for i, d in enumerate(layers))
        for d in descs:
            if d.media_type not in LAYER_MEDIA_TYPES:
                raise ImageError(f"manifest: layer media type {d.media_type!r} is not supported "
                                 f"(accepted: {', '.join(LAYER_MEDIA_TYPES)})")
        annotations = Descriptor.from_json({"mediaType": "x", "digest": config.digest, "size": 0,
                                            "annotations": doc.get("annotations")}, "manifest").annotations
        return cls(config, descs, annotations, media_type)


def _string(value: object, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImageError(f"image config: {name} must be a string")
    return value


def _strings(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImageError(f"image config: {name} must be a list of strings")
    return tuple(value)


def _labels(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise ImageError("image config: Labels must map strings to strings")
    return dict(value)
