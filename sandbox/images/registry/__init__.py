"""Images to and from registries (the OCI distribution spec, v2): pull, push, login.

::

    from sandbox.images import registry

    image = registry.pull("127.0.0.1:5000/team/tool:1", progress=registry.for_stream(sys.stderr))
    digest = registry.push("127.0.0.1:5000/team/tool:1")     # the stored image of that name
    image = registry.pull_if_missing("registry.example/app:2")  # once, however many ask at once
    registry.login("registry.example", "alice", password)      # checked, then kept root-only

The parts: ``names`` (which registry a reference names, HTTP or HTTPS),
``client`` (every request, with the auth chain), ``auth`` (where credentials
come from, challenges), ``remote`` and ``local`` (a registry and the store
as a copy's source and destination), ``copy`` (the copy itself),
``manifests`` (accepted documents, platforms), ``progress`` (typed events),
``locations`` (which repositories hold a blob, for mounts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ...errors import ImageError, ImageNotFound
from .. import layout
from ..reference import Reference, parse_reference
from ..stored import StoredImage, lookup
from .auth import Credential, forget_credential, store_credential
from .names import insecure_hosts, names_registry, resolve
from .progress import Event, Progress, for_stream, silent

__all__ = ["Event", "Progress", "for_stream", "is_remote", "login", "logout", "pull",
           "pull_if_missing", "push", "silent"]


def is_remote(ref: str | Reference) -> bool:
    """True when the reference names a registry host (``host[:port]/repo[:tag]``)."""
    try:
        parsed = ref if isinstance(ref, Reference) else parse_reference(ref)
    except ImageError:
        return False
    return names_registry(parsed.name)


def _client(registry: str, api_host: str, insecure: Iterable[str]):
    from .client import Client

    return Client(registry, api_host, insecure=insecure_hosts(tuple(insecure)))


def pull(ref: str, *, progress: Progress = silent, insecure: Iterable[str] = (), bounds=None) -> StoredImage:
    """Copy the image ``ref`` names from its registry into the store, tagged ``ref``.

    Nothing is read again that the store has; an image already stored at the
    registry's digest costs one manifest request.
    """
    from .copy import copy_image
    from .local import StoreDestination
    from .remote import RegistrySource

    remote = resolve(ref)
    with _client(remote.registry, remote.api_host, insecure) as client, layout.writing():
        destination = StoreDestination(remote.local, origin=(remote.registry, remote.repository), bounds=bounds)
        copy_image(RegistrySource(client, remote), destination, progress=progress)
    return destination.image or lookup(remote.local)


def push(ref: str, *, progress: Progress = silent, insecure: Iterable[str] = (),
         chunk_size: int | None = None) -> str:
    """Copy the stored image ``ref`` names to the registry and repository in that name; its digest."""
    from .copy import copy_image
    from .local import StoreSource
    from .remote import CHUNK_SIZE, RegistryDestination

    remote = resolve(ref)
    if remote.digest:
        raise ImageError(f"cannot push to {ref}: a push names a tag, not a digest",
                         hint="push NAME:TAG; the registry gives the digest")
    image = lookup(remote.local)
    with _client(remote.registry, remote.api_host, insecure) as client:
        destination = RegistryDestination(client, remote, chunk_size=chunk_size or CHUNK_SIZE)
        return copy_image(StoreSource(image), destination, progress=progress)


def pull_if_missing(ref: str, *, progress: Progress = silent, insecure: Iterable[str] = ()) -> StoredImage:
    """The stored image ``ref`` names, pulled first if the store lacks it and it names a registry.

    For `sandbox run`, job files, the pytest marker and a build's FROM: when
    many processes ask for the same reference at once, one pulls (a lock per
    reference) and the others wait and find it stored.
    """
    try:
        return lookup(ref)
    except ImageNotFound:
        if not is_remote(ref):
            raise
    key = hashlib.sha256(str(parse_reference(ref)).encode()).hexdigest()[:32]
    layout.ensure()
    with layout.flocked(f"pull-{key}"):
        try:
            return lookup(ref)
        except ImageNotFound:
            return pull(ref, progress=progress, insecure=insecure)


def login(registry: str, username: str, password: str, *, insecure: Iterable[str] = ()) -> str:
    """Check the credentials against ``registry`` (host[:port]) and keep them; where they are kept."""
    from .names import DOCKER_HUB, DOCKER_HUB_API

    _check_registry_name(registry)
    if not username or not password:
        raise ImageError("a login needs a user name and a password (read from standard input)")
    cred = Credential(username, password, "the command line")
    api_host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
    from .client import Client

    with Client(registry, api_host, insecure=insecure_hosts(tuple(insecure)), credentials=[cred],
                anonymous=False) as client:
        client.request("GET", "/v2/", scopes=(), what="its API (/v2/)")
    return str(store_credential(registry, username, password))


def logout(registry: str) -> bool:
    """Forget ``sandbox login``'s credentials for ``registry``; False if there were none."""
    _check_registry_name(registry)
    return forget_credential(registry)


def _check_registry_name(registry: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?", registry or ""):
        raise ImageError(f"invalid registry {registry!r}: expected HOST or HOST:PORT")
