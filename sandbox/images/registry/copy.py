"""Copying an image from a Source to a Destination: what pull and push are made of.

A copy sees only the two protocols below; the registry (``remote``) and the
store (``local``) are both. It takes the source's manifest for this host's
platform, its config (checked against its digest, its diffIDs read), then
each layer the destination lacks, lowest first, and the manifest last, so
the destination names the image only once everything it needs is there.
Blobs are verified where they land (the store checks digest and diffID as
it unpacks; a registry checks the digest we give it); what the destination
has, it skips; a registry may mount a blob from another repository.
Progress goes to a callback as typed events (``progress``).
"""

from __future__ import annotations

from typing import Protocol

from ...errors import ImageError
from ..oci import ConfigDocument, Descriptor, Manifest
from ..streams import BlobReader
from .manifests import check_digest, parse_document
from .progress import BlobAdvanced, BlobDone, BlobSkipped, BlobStarted, ImageDone, Progress, silent


class Source(Protocol):
    """Where an image comes from."""

    name: str

    def manifest(self) -> tuple[bytes, str]:
        """The image manifest's bytes (for this host's platform) and their digest, checked."""

    def open_blob(self, desc: Descriptor) -> BlobReader:
        """A reader of the blob ``desc`` names (the caller closes it)."""


class Destination(Protocol):
    """Where an image goes."""

    name: str
    action: str  # "pulled" or "pushed", for the summary

    def has_image(self, digest: str) -> bool:
        """True when the image ``digest`` is there whole and named as asked (nothing to do)."""

    def has_blob(self, desc: Descriptor, diff_id: str | None) -> bool:
        """True when the blob (for the store: and its unpacked layer) is there already;
        ``diff_id`` None: the blob is a config."""

    def mount_blob(self, desc: Descriptor) -> str | None:
        """Make the blob appear without copying it; where it came from, or None."""

    def put_blob(self, desc: Descriptor, diff_id: str | None, opener: "Opener") -> None:
        """Store a blob read from ``opener()`` (again, if a retry needs it); verify it."""

    def put_manifest(self, data: bytes, digest: str) -> None:
        """Store the manifest and name the image: the last step."""


class Opener(Protocol):
    def __call__(self) -> BlobReader: ...


def copy_image(source: Source, destination: Destination, *, progress: Progress = silent) -> str:
    """Copy the image; its manifest's digest."""
    data, digest = source.manifest()
    if destination.has_image(digest):
        progress(ImageDone(destination.name, digest, "up to date"))
        return digest
    manifest = Manifest.from_json(parse_document(data, f"manifest of {source.name}"))
    config_data = read_config(source, manifest.config)
    config = ConfigDocument.from_json(parse_document(config_data, f"image config of {source.name}"))
    if len(config.diff_ids) != len(manifest.layers):
        raise ImageError(f"{source.name}: its manifest lists {len(manifest.layers)} layers, its config "
                         f"{len(config.diff_ids)} diffIDs", hint="the image is damaged")
    if not destination.has_blob(manifest.config, None) and not destination.mount_blob(manifest.config):
        destination.put_blob(manifest.config, None, _bytes_opener(config_data))
    for desc, diff_id in zip(manifest.layers, config.diff_ids):
        copy_layer(source, destination, desc, diff_id, progress)
    destination.put_manifest(data, digest)
    progress(ImageDone(destination.name, digest, destination.action))
    return digest


def read_config(source: Source, desc: Descriptor) -> bytes:
    """The config blob, bounded and checked against its digest."""
    from ..layout import MAX_DOCUMENT

    if desc.size > MAX_DOCUMENT:
        raise ImageError(f"image config {desc.digest} claims {desc.size} bytes: at most {MAX_DOCUMENT} accepted")
    with source.open_blob(desc) as reader:
        data = reader.read(desc.size + 1)
    if len(data) != desc.size:
        raise ImageError(f"image config {desc.digest} has {len(data)} bytes, its manifest says {desc.size}")
    check_digest(data, desc.digest, f"image config of {source.name}")
    return data


def copy_layer(source: Source, destination: Destination, desc: Descriptor, diff_id: str,
               progress: Progress) -> None:
    if destination.has_blob(desc, diff_id):
        progress(BlobSkipped(desc.digest, desc.size, "already there"))
        return
    mounted = destination.mount_blob(desc)
    if mounted:
        progress(BlobSkipped(desc.digest, desc.size, f"mounted from {mounted}"))
        return
    progress(BlobStarted(desc.digest, desc.size, "layer"))

    def opener() -> BlobReader:
        return Counting(source.open_blob(desc), desc, progress)

    destination.put_blob(desc, diff_id, opener)
    progress(BlobDone(desc.digest, desc.size))


def _bytes_opener(data: bytes) -> Opener:
    import io

    return lambda: io.BytesIO(data)


class Counting:
    """A reader that reports how many bytes of a blob went by."""

    def __init__(self, raw: BlobReader, desc: Descriptor, progress: Progress) -> None:
        self._raw = raw
        self._desc = desc
        self._progress = progress
        self.done = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self.done += len(data)
            self._progress(BlobAdvanced(self._desc.digest, self.done, self._desc.size))
        return data

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "Counting":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
