"""/v1/images: the verbs that name or make an image in one call: tag, import, commit.

As `sandbox tag`, `sandbox image import` and `sandbox commit` do here, with
the ``images`` scope; each answers the image made, ``{"id", "tags"}``.

Import takes a rootfs tarball (plain, gzip, xz, bzip2 or zstd) uploaded as
``archive``: untrusted, it goes through the unpacker `sandbox image import`
uses, unchanged (nothing written outside the new image, no link followed, no
device node outside dev/); nothing is named until the image is whole::

    curl $S -F archive=@rootfs.tar.gz 'http://d/v1/images/import?name=mine:1'

Commit stores what a live sandbox changed: a token may commit only a sandbox
it may see (its own, or any for an admin), as for every sandbox route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from sandbox import commit_sandbox, import_image_archive, tag_image

from ..deps import EngineDep, ImageAdmin
from ..errors import ApiError
from ..models import ERRORS, ImageMade
from .sandboxes import find as find_sandbox

router = APIRouter(tags=["images"], responses=ERRORS)  # included by ``images``, under /images
MAX_ARCHIVE = 4 << 30  # an uploaded rootfs tarball, packed (the upload is spooled to disk)


def _made(image: Any) -> dict[str, Any]:
    return {"id": image.id, "tags": list(image.tags)}


@router.post("/import", status_code=201, response_model=ImageMade)
async def import_archive(
        _caller: ImageAdmin,
        archive: Annotated[UploadFile, File(description="a rootfs tarball (plain, gzip, xz, bzip2, zstd)")],
        name: Annotated[str, Query(description="the image's NAME[:TAG]")],
        source: Annotated[str | None, Query(description="the archive as its sender named it, "
                                            "for messages and the image's history")] = None,
        replace: bool = False) -> dict[str, Any]:
    """A rootfs tarball as a one-layer image (as `sandbox image import`)."""
    if (archive.size or 0) > MAX_ARCHIVE:
        raise ApiError(413, f"archive is over {MAX_ARCHIVE >> 20} MiB", field="archive")
    shown = source or archive.filename or "archive"
    return _made(await run_in_threadpool(lambda: import_image_archive(
        archive.file, name, name=shown, replace=replace)))


@router.post("/commit", status_code=201, response_model=ImageMade)
async def commit(caller: ImageAdmin, engine: EngineDep,
                 sandbox: Annotated[str, Query(description="the live sandbox, by id or name")],
                 target: Annotated[str, Query(description="the image's NAME[:TAG]")],
                 message: str = "") -> dict[str, Any]:
    """What a live sandbox changed as a new image over its own (as `sandbox commit`)."""
    held = find_sandbox(engine, caller, sandbox)
    ref = held.id if held is not None else sandbox
    return _made(await run_in_threadpool(lambda: commit_sandbox(ref, target, message=message)))


@router.post("/{ref:path}/tag", status_code=201, response_model=ImageMade)
async def tag(ref: str, _caller: ImageAdmin,
              target: Annotated[str, Query(description="the new NAME[:TAG]")]) -> dict[str, Any]:
    """Point ``target`` at the image ``ref`` names (as `sandbox tag`)."""
    return _made(await run_in_threadpool(tag_image, ref, target))
