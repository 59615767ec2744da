"""Manifests as registries serve them: what we accept, how they are checked, which platform.

A registry answers a manifest request with an image manifest (OCI, or
Docker's schema 2) or an index of them (an OCI image index, or Docker's
manifest list); from an index we take the entry for this host's platform
(linux and this machine's architecture), and say which platforms there are
when it has none. Every document is bounded, must be a JSON object, and is
checked against the digest that names it.
"""

from __future__ import annotations

import json
import os

from ...errors import ImageError
from ..digest import digest_bytes, parse_digest
from ..layout import MAX_DOCUMENT
from ..oci import _ARCH, DOCKER_MANIFEST_LIST, INDEX_TYPES, MANIFEST_TYPES, MEDIA_INDEX, Descriptor

ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this host, as image indexes name them."""
    machine = os.uname().machine
    variant = {"aarch64": "v8", "armv7l": "v7"}.get(machine, "")
    return "linux", _ARCH.get(machine, machine), variant


def parse_document(data: bytes, what: str) -> dict:
    """A bounded JSON object, or an ImageError naming ``what``."""
    if len(data) > MAX_DOCUMENT:
        raise ImageError(f"{what} has {len(data)} bytes: at most {MAX_DOCUMENT} accepted")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{what} is not valid JSON ({exc})", hint="the registry answered garbage") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what} is not a JSON object", hint="the registry answered garbage")
    return doc


def check_digest(data: bytes, expected: str | None, what: str) -> str:
    """The digest of ``data``; ImageError if it is not ``expected`` (when one is given)."""
    seen = digest_bytes(data)
    if expected is not None and seen != parse_digest(expected, what=f"digest of {what}"):
        raise ImageError(f"{what} does not match its digest: expected {expected}, got {seen}",
                         hint="the registry or something between us changed it: nothing was stored")
    return seen


def media_type_of(doc: dict, content_type: str, what: str) -> str:
    """The document's media type (its own field first, else the Content-Type)."""
    media_type = doc.get("mediaType") or content_type.split(";")[0].strip()
    if media_type in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ImageError(f"{what} is a Docker schema 1 manifest, which is not supported",
                         hint="push the image again with a current Docker, Podman or skopeo")
    if media_type not in (*MANIFEST_TYPES, *INDEX_TYPES):
        if "manifests" in doc:
            return MEDIA_INDEX
        if "layers" in doc:
            return MANIFEST_TYPES[0]
        raise ImageError(f"{what} has media type {media_type!r}: expected an image manifest or index")
    return media_type


def choose_platform(index: dict, what: str) -> Descriptor:
    """The index entry for this host's platform; ImageError naming the platforms there are."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ImageError(f"{what}: an index without a manifests list")
    want_os, want_arch, want_variant = host_platform()
    found: list[str] = []
    fallback = None
    for i, entry in enumerate(entries):
        desc = Descriptor.from_json(entry, f"{what} entry {i}")
        platform = entry.get("platform") if isinstance(entry.get("platform"), dict) else {}
        os_, arch, variant = (str(platform.get(k, "")) for k in ("os", "architecture", "variant"))
        found.append("/".join(p for p in (os_, arch, variant) if p) or "unknown")
        if desc.media_type not in MANIFEST_TYPES or (os_, arch) != (want_os, want_arch):
            continue
        if not want_variant or not variant or variant == want_variant:
            return desc
        fallback = fallback or desc
    if fallback is not None:
        return fallback
    platform = "/".join(p for p in (want_os, want_arch) if p)
    raise ImageError(f"{what} has no image for {platform} (it has: {', '.join(found) or 'none'})",
                     hint="this host runs only images of its own platform")


def is_index(media_type: str) -> bool:
    return media_type in (MEDIA_INDEX, DOCKER_MANIFEST_LIST)
