"""Where a reference lives: the registry host, the repository in it, plain HTTP or TLS.

A reference names a registry when its first component looks like a host
(it holds a ``.`` or a ``:``, or is ``localhost``), as Docker reads
``[registry[:port]/]repo[:tag|@digest]``; any other name lives on Docker
Hub (``alpine`` is ``docker.io/library/alpine``). The store keeps a pulled
image under the reference as the user wrote it.

A registry is spoken to over HTTPS, except the loopback hosts and those
listed in ``--insecure-registry`` or ``SANDBOX_INSECURE_REGISTRIES``
(comma-separated ``host[:port]``), which get plain HTTP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..reference import Reference, parse_reference

DOCKER_HUB = "docker.io"
#: The host that serves Docker Hub's API.
DOCKER_HUB_API = "registry-1.docker.io"
LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
INSECURE_ENV = "SANDBOX_INSECURE_REGISTRIES"


@dataclass(frozen=True)
class RemoteReference:
    """A reference resolved to a registry: ``registry`` (host[:port]), ``repository``, tag or digest."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None
    local: Reference  # the name the store keeps it under

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def selector(self) -> str:
        """What follows ``/manifests/``: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return str(self.local)


def names_registry(name: str) -> bool:
    """True when the reference's first component is a registry host, not a repository."""
    first, slash, _ = name.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def resolve(text: str | Reference) -> RemoteReference:
    """The registry, repository and tag or digest of a reference (ImageError if malformed)."""
    ref = text if isinstance(text, Reference) else parse_reference(text)
    if names_registry(ref.name):
        registry, _, repository = ref.name.partition("/")
    else:
        registry, repository = DOCKER_HUB, ref.name
        if "/" not in repository:
            repository = f"library/{repository}"
    return RemoteReference(registry, repository, ref.tag if not ref.digest else None, ref.digest, ref)


def insecure_hosts(extra: tuple[str, ...] | list[str] = ()) -> set[str]:
    """The hosts spoken to over plain HTTP besides loopback: ``extra`` and the environment's."""
    listed = os.environ.get(INSECURE_ENV, "").split(",")
    return {h.strip() for h in (*listed, *extra) if h.strip()}


def scheme_for(registry: str, insecure: set[str]) -> str:
    """``http`` for loopback and listed hosts (with or without the port), else ``https``."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host in LOOPBACK or registry in insecure or host in insecure:
        return "http"
    return "https"
