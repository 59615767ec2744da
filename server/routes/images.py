"""/v1/images: list, inspect, remove.

Build (a context tar uploaded, progress streamed), pull and push (progress
streamed) belong here as ``POST /v1/images/build``, ``POST /v1/images/pull``
and ``POST /v1/images/{ref}/push``, each a thin call of the engine's own
function once it is exported by ``sandbox/__init__.py``; they are not on
main yet. Images are shared by every caller: any token may read them, and
removing one needs the ``images`` scope.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from sandbox import image_rows, inspect_image, remove_image

from ..deps import ImageAdmin, Reader
from ..models import ERRORS, ImageRemoved, ImageRow

router = APIRouter(prefix="/images", tags=["images"], responses=ERRORS)


@router.get("", response_model=list[ImageRow])
async def list_images(_caller: Reader) -> list[dict[str, Any]]:
    """One row per tag, built-in images last (as `sandbox images`)."""
    return await run_in_threadpool(image_rows)


@router.get("/{ref:path}")
async def inspect(ref: str, _caller: Reader) -> dict[str, Any]:
    """Config, layers (diffIDs) and history, as `sandbox image inspect`."""
    return await run_in_threadpool(inspect_image, ref)


@router.delete("/{ref:path}", response_model=ImageRemoved)
async def delete(ref: str, _caller: ImageAdmin, force: bool = False) -> dict[str, Any]:
    """Untag; an image whose last tag goes is deleted (refused while in use, unless ``force``)."""
    return await run_in_threadpool(lambda: remove_image(ref, force=force))
