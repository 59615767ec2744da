"""A registry as a copy's Source (pull) and Destination (push): the distribution spec's calls.

- manifests: ``GET /v2/<repo>/manifests/<tag|digest>`` with every media type
  we read in Accept; an index is resolved to this host's platform; each
  document is checked against the digest that names it (the one asked for,
  or the registry's Docker-Content-Digest).
- blobs: ``GET`` streamed (redirects followed, without our credentials to
  another host); ``HEAD`` to skip what the registry has; uploads started by
  ``POST .../blobs/uploads/``, then one ``PUT ?digest=`` (monolithic) or
  ``PATCH`` chunks with Content-Range and a closing ``PUT`` (chunked, for
  blobs over ``chunk_size``; a chunk cut short resumes from the offset the
  registry reports); ``POST ...?mount=&from=`` mounts a blob another
  repository of the registry holds.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from ...errors import ImageError
from ..oci import Descriptor
from ..streams import BlobReader, Readable
from . import locations
from .client import Client, RemoteNotFound, pull_scope, push_scope
from .copy import Opener
from .manifests import ACCEPT, check_digest, choose_platform, is_index, media_type_of, parse_document
from .names import RemoteReference

#: Blobs larger than this go up in chunks of this size.
CHUNK_SIZE = 32 << 20
_READ = 1 << 20


class RegistrySource:
    """Pull side: the image ``ref`` names in its registry."""

    def __init__(self, client: Client, ref: RemoteReference) -> None:
        self.client = client
        self.ref = ref
        self.name = str(ref)
        self.scopes = (pull_scope(ref.repository),)

    def manifest(self) -> tuple[bytes, str]:
        data, media_type, digest = self._get(self.ref.selector, self.ref.digest)
        if is_index(media_type):
            chosen = choose_platform(parse_document(data, f"index of {self.name}"), self.name)
            data, media_type, digest = self._get(chosen.digest, chosen.digest)
            if is_index(media_type):
                raise ImageError(f"{self.name}: its index points at another index, which is not supported")
        return data, digest

    def _get(self, selector: str, expected: str | None) -> tuple[bytes, str, str]:
        what = self.name if selector == self.ref.selector else f"manifest {selector} of {self.name}"
        try:
            response = self.client.request("GET", f"/v2/{self.ref.repository}/manifests/{selector}",
                                           scopes=self.scopes, what=what, headers={"Accept": ACCEPT},
                                           stream=True)
        except RemoteNotFound:
            raise self._not_found(selector) from None
        try:
            data = _read_bounded(response, what)
        finally:
            response.close()
        header = response.headers.get("Docker-Content-Digest")
        if expected is None and header and header.startswith("sha256:"):
            expected = header
        digest = check_digest(data, expected, what)
        doc = parse_document(data, what)
        return data, media_type_of(doc, response.headers.get("Content-Type", ""), what), digest

    def _not_found(self, selector: str) -> RemoteNotFound:
        """Which is missing: the repository, or the tag (the tags there are named)?"""
        repo, registry = self.ref.repository, self.ref.registry
        try:
            response = self.client.request("GET", f"/v2/{repo}/tags/list?n=20", scopes=self.scopes,
                                           what=f"the tags of {repo}")
            tags = response.json().get("tags") or []
        except (RemoteNotFound, ValueError, AttributeError):
            return RemoteNotFound(f"{self.name}: no repository {repo!r} on registry {registry}")
        except ImageError:
            tags = []
        shown = ", ".join(str(t) for t in tags[:20]) or "none"
        what = "no manifest" if selector.startswith("sha256:") else "no tag"
        return RemoteNotFound(f"{self.name}: {what} {selector!r} in {repo} on registry {registry} (tags: {shown})")

    def open_blob(self, desc: Descriptor) -> BlobReader:
        what = f"blob {desc.digest} of {self.name}"
        response = self.client.request("GET", f"/v2/{self.ref.repository}/blobs/{desc.digest}",
                                       scopes=self.scopes, what=what, stream=True)
        return ResponseReader(response, what)


class ResponseReader:
    """A streamed response body as a file object; a broken connection is one ImageError."""

    def __init__(self, response: httpx.Response, what: str) -> None:
        self._response = response
        self._chunks = response.iter_bytes(_READ)
        self._buffer = b""
        self._what = what

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                chunk = next(self._chunks, b"")
            except httpx.HTTPError as exc:
                raise ImageError(f"the connection broke while reading {self._what} ({exc})",
                                 hint="nothing half was kept: run the same command again") from None
            if not chunk:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> "ResponseReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_bounded(response: httpx.Response, what: str) -> bytes:
    from ..layout import MAX_DOCUMENT

    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > MAX_DOCUMENT:
            raise ImageError(f"{what} is larger than {MAX_DOCUMENT} bytes", hint="the registry answered garbage")
    return data


class RegistryDestination:
    """Push side: the repository and tag ``ref`` names."""

    action = "pushed"

    def __init__(self, client: Client, ref: RemoteReference, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.client = client
        self.ref = ref
        self.name = str(ref)
        self.repo = ref.repository
        self.scopes = (push_scope(ref.repository),)
        self.chunk_size = chunk_size

    def has_image(self, digest: str) -> bool:
        response = self.client.request("HEAD", f"/v2/{self.repo}/manifests/{self.ref.selector}",
                                       scopes=self.scopes, what=f"manifest {self.name}",
                                       headers={"Accept": ACCEPT}, missing_ok=True)
        return response.status_code == 200 and response.headers.get("Docker-Content-Digest") == digest

    def has_blob(self, desc: Descriptor, diff_id: str | None) -> bool:
        response = self.client.request("HEAD", f"/v2/{self.repo}/blobs/{desc.digest}", scopes=self.scopes,
                                       what=f"blob {desc.digest} in {self.name}", missing_ok=True)
        found = response.status_code == 200
        if found:
            locations.remember(desc.digest, self.ref.registry, self.repo)
        return found

    def mount_blob(self, desc: Descriptor) -> str | None:
        for source in locations.known(desc.digest, self.ref.registry):
            if source == self.repo:
                continue
            query = urlencode({"mount": desc.digest, "from": source})
            response = self.client.request(
                "POST", f"/v2/{self.repo}/blobs/uploads/?{query}", scopes=(*self.scopes, pull_scope(source)),
                what=f"a mount of {desc.digest} into {self.name}", expect=(201, 202))
            if response.status_code == 201:
                locations.remember(desc.digest, self.ref.registry, self.repo)
                return source
            self._cancel(response.headers.get("Location"))
        return None

    def put_blob(self, desc: Descriptor, diff_id: str | None, opener: Opener) -> None:
        what = f"blob {desc.digest} to {self.name}"
        location = self._start(what)
        if desc.size <= self.chunk_size:
            self._monolithic(location, desc, opener, what)
        else:
            self._chunked(location, desc, opener, what)
        locations.remember(desc.digest, self.ref.registry, self.repo)

    def put_manifest(self, data: bytes, digest: str) -> None:
        media_type = parse_document(data, "manifest").get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
        response = self.client.request(
            "PUT", f"/v2/{self.repo}/manifests/{self.ref.selector}", scopes=self.scopes,
            what=f"manifest {self.name}", headers={"Content-Type": str(media_type)}, body=data, expect=(201,))
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise ImageError(f"registry {self.ref.registry} stored the manifest of {self.name} as {stored}, "
                             f"not {digest}", hint="the registry changed the manifest")

    # -- uploads ----------------------------------------------------------------

    def _start(self, what: str) -> str:
        response = self.client.request("POST", f"/v2/{self.repo}/blobs/uploads/", scopes=self.scopes,
                                       what=what, expect=(202,))
        return self._location(response, what)

    def _location(self, response: httpx.Response, what: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise ImageError(f"registry {self.ref.registry} gave no upload location for {what}")
        return str(httpx.URL(self.client.url(f"/v2/{self.repo}/blobs/uploads/")).join(location))

    def _monolithic(self, location: str, desc: Descriptor, opener: Opener, what: str) -> None:
        def body() -> Iterator[bytes]:
            with opener() as reader:
                while chunk := reader.read(_READ):
                    yield chunk
                _drain(reader)

        self.client.request("PUT", _with_digest(location, desc.digest), scopes=self.scopes, what=what,
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Length": str(desc.size)}, body=body, expect=(201,))

    def _chunked(self, location: str, desc: Descriptor, opener: Opener, what: str) -> None:
        offset = 0
        with opener() as reader:
            while offset < desc.size:
                chunk = _read_full(reader, self.chunk_size)
                if not chunk:
                    raise ImageError(f"{what}: the blob ended at {offset} of {desc.size} bytes")
                location = self._patch(location, chunk, offset, what)
                offset += len(chunk)
            _drain(reader)
        self.client.request("PUT", _with_digest(location, desc.digest), scopes=self.scopes, what=what,
                            headers={"Content-Length": "0"}, body=b"", expect=(201,))

    def _patch(self, location: str, chunk: bytes, offset: int, what: str) -> str:
        """Send one chunk; after a broken connection, resume once from where the registry is."""
        for attempt in (0, 1):
            try:
                response = self.client.request(
                    "PATCH", location, scopes=self.scopes, what=what, body=chunk, expect=(202,),
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                             "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
                return self._location(response, what)
            except ImageError:
                if attempt:
                    raise
                done = self._uploaded(location, what)
                if not offset <= done <= offset + len(chunk):
                    raise
                chunk, offset = chunk[done - offset:], done
                if not chunk:
                    return location
        raise AssertionError("unreachable")

    def _uploaded(self, location: str, what: str) -> int:
        """How many bytes of an upload the registry holds (its Range header: ``0-N``)."""
        response = self.client.request("GET", location, scopes=self.scopes, what=what, expect=(204,))
        end = response.headers.get("Range", "0--1").rpartition("-")[2]
        return int(end) + 1 if end.lstrip("-").isdigit() else 0

    def _cancel(self, location: str | None) -> None:
        if location:
            try:
                self.client.request("DELETE", location, scopes=self.scopes, what="an unused upload",
                                    expect=(204, 404))
            except ImageError:
                pass


def _with_digest(location: str, digest: str) -> str:
    parts = urlsplit(location)
    query = (parts.query + "&" if parts.query else "") + urlencode({"digest": digest})
    return urlunsplit(parts._replace(query=query))


def _read_full(reader: Readable, size: int) -> bytes:
    out = io.BytesIO()
    while out.tell() < size:
        data = reader.read(size - out.tell())
        if not data:
            break
        out.write(data)
    return out.getvalue()


def _drain(reader: Readable) -> None:
    """Read to the end, so a verifying reader checks the digest before the upload is closed."""
    while reader.read(_READ):
        pass
