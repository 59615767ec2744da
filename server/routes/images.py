"""/v1/images: list, inspect, remove; build, pull and push with their progress streamed.

Images are shared by every caller: any token may read them; removing,
building, pulling and pushing need the ``images`` scope. Build, pull and
push answer NDJSON as they go (``server.progress``): the lines `sandbox
build`/`pull`/`push` print, then the result or the error, so the CLI as a
client prints what it prints embedded. A build's context is an uploaded tar
(gzip or not), untrusted: it is unpacked as a job's workspace is, bounded,
into a private work dir that `sandbox gc` removes if the daemon is killed::

    tar -C app -c . | curl -H "Authorization: Bearer $T" -F context=@- \\
        ".../v1/images/build?tag=app:1&file=Sandboxfile"

Registry credentials and SANDBOX_INSECURE_REGISTRIES are the daemon's host's.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, TextIO

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from sandbox import (
    BuildCancel,
    BuildFileError,
    Limits,
    SandboxError,
    build_error_text,
    build_image,
    build_plan_text,
    image_rows,
    inspect_image,
    pull_image,
    push_image,
    registry_progress,
    remove_image,
    uploaded_context,
)

from ..deps import ImageAdmin, Reader
from ..errors import ApiError
from ..models import ERRORS, ImageRemoved, ImageRow
from ..progress import STREAMED, streamed
from . import image_edits

router = APIRouter(prefix="/images", tags=["images"], responses=ERRORS)
MAX_CONTEXT = 256 << 20  # an uploaded build context, packed
MAX_CONTEXT_MEMBERS = 500_000  # unpacked: as a job's workspace (jobs.workspace)
MAX_CONTEXT_BYTES = 2 << 30
MAX_SANDBOXFILE = 1 << 20  # the build reads no more (a larger file is refused by it)
Insecure = Annotated[list[str], Query(description="HOST[:PORT] spoken to in plain HTTP "
                                                  "(as --insecure-registry)")]


@router.get("", response_model=list[ImageRow])
async def list_images(_caller: Reader) -> list[dict[str, Any]]:
    """One row per tag, built-in images last (as `sandbox images`)."""
    return await run_in_threadpool(image_rows)


@router.post("/pull", response_class=StreamingResponse, responses=STREAMED)
async def pull(_caller: ImageAdmin, ref: str, insecure_registry: Insecure = []) -> Response:  # noqa: B006
    """Copy ``ref`` from its registry into the store (as `sandbox pull`); result: id, tags, digest."""

    def work(out: TextIO) -> dict[str, Any]:
        image = pull_image(ref, progress=registry_progress(out), insecure=insecure_registry)
        return {"id": image.id, "tags": list(image.tags)}

    return await streamed(work)


@router.post("/push", response_class=StreamingResponse, responses=STREAMED)
async def push(_caller: ImageAdmin, ref: str, insecure_registry: Insecure = []) -> Response:  # noqa: B006
    """Copy the stored image ``ref`` to the registry its name holds (as `sandbox push`); result: digest."""

    def work(out: TextIO) -> dict[str, Any]:
        return {"digest": push_image(ref, progress=registry_progress(out), insecure=insecure_registry)}

    return await streamed(work)


@router.post("/build", response_class=StreamingResponse, responses=STREAMED)
async def build(
        _caller: ImageAdmin,
        context: Annotated[UploadFile, File(description="a tar(.gz) of the build context")],
        sandboxfile: Annotated[UploadFile | None, File(
            description="the Sandboxfile, when it is not in the context (overrides file)")] = None,
        file: Annotated[str | None, Query(description="the Sandboxfile's path in the context "
                                          "(default: Sandboxfile, else Dockerfile)")] = None,
        shown_file: Annotated[str | None, Query(description="the file's name in messages")] = None,
        tag: Annotated[list[str], Query(description="NAME[:TAG], may be repeated")] = [],  # noqa: B006
        build_arg: Annotated[list[str], Query(description="KEY=VALUE, may be repeated")] = [],  # noqa: B006
        target: str | None = None, no_cache: bool = False,
        network: Annotated[str, Query(description="none, bridge or a network's name")] = "none",
        egress: bool = False, memory: str | None = None, cpus: str | None = None,
        pids: str | None = None, timeout: str | None = None,
        dry_run: Annotated[bool, Query(description="answer the plan as `sandbox build --dry-run` "
                                       "prints it (against this host's store), build nothing")] = False,
        ) -> Response:
    """Build an image (as `sandbox build`); progress as it prints it, result: id and tags.

    A client that goes away cancels the build: its running step is killed, nothing is
    tagged, and its work dirs go (the steps it finished stay in the build cache, as
    after a failed build).
    """
    packed = await _read_capped(context, MAX_CONTEXT, "context")
    text = await _read_capped(sandboxfile, MAX_SANDBOXFILE + 1, "sandboxfile") if sandboxfile else None
    args = _build_args(build_arg)
    limits: dict[str, Any] = {k: v for k, v in (("memory", memory), ("cpus", cpus), ("pids", pids),
                                ("timeout", timeout)) if v is not None}
    shown = shown_file or file or "Sandboxfile"
    sources: dict[str, str | None] = {}
    cancel = BuildCancel()

    def work(out: TextIO) -> dict[str, Any]:
        with uploaded_context(packed, max_members=MAX_CONTEXT_MEMBERS,
                              max_bytes=MAX_CONTEXT_BYTES) as work_dir:
            path = _sandboxfile(work_dir, file, text)
            sources["text"] = _read_text(path)
            if dry_run:
                out.write(build_plan_text(path, shown_file=shown, build_args=args, target=target))
                return {}
            image = build_image(str(work_dir / "context"), tags=tuple(tag), file=path,
                                build_args=args, target=target, network=network, egress=egress,
                                limits=Limits(**limits), no_cache=no_cache, out=out,
                                shown_file=shown, cancel=cancel)
        return {"id": image.id, "tags": list(image.tags)}

    def error_text(exc: SandboxError) -> str:
        return _rendered(exc, sources.get("text"))

    return await streamed(work, error_text=error_text, on_gone=cancel.set)


router.include_router(image_edits.router)  # POST import, commit, {ref}/tag: before the catch-alls


@router.get("/{ref:path}")
async def inspect(ref: str, _caller: Reader) -> dict[str, Any]:
    """Config, layers (diffIDs) and history, as `sandbox image inspect`."""
    return await run_in_threadpool(inspect_image, ref)


@router.delete("/{ref:path}", response_model=ImageRemoved)
async def delete(ref: str, _caller: ImageAdmin, force: bool = False) -> dict[str, Any]:
    """Untag; an image whose last tag goes is deleted (refused while in use, unless ``force``)."""
    return await run_in_threadpool(lambda: remove_image(ref, force=force))


async def _read_capped(upload: UploadFile, cap: int, what: str) -> bytes:
    data = await upload.read(cap + 1)
    if len(data) > cap:
        raise ApiError(413, f"{what} is over {cap >> 20} MiB", field=what)
    return data


def _build_args(items: list[str]) -> dict[str, str]:
    args = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise ApiError(400, f"build_arg {item!r}: expected KEY=VALUE", field="build_arg")
        args[key] = value
    return args


def _sandboxfile(work_dir: Path, file: str | None, text: bytes | None) -> str:
    """The Sandboxfile's path: the uploaded one, else ``file`` inside the context (never outside)."""
    if text is not None:
        (work_dir / "Sandboxfile").write_bytes(text)
        return str(work_dir / "Sandboxfile")
    context = work_dir / "context"
    if file is None:
        found = [n for n in ("Sandboxfile", "Dockerfile") if os.path.lexists(context / n)]
        file = found[0] if found else "Sandboxfile"
    parts = PurePosixPath(file).parts
    root = os.path.realpath(context)
    real = os.path.realpath(context.joinpath(*parts)) if parts else root
    if file.startswith("/") or ".." in parts or not real.startswith(root + os.sep):
        raise ApiError(400, f"invalid file {file!r}: expected a path inside the build context",
                       field="file")
    return real


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_SANDBOXFILE).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _rendered(exc: SandboxError, text: str | None) -> str:
    """A Sandboxfile error with the lines it points at, as `sandbox build` prints it."""
    return build_error_text(exc, text) if isinstance(exc, BuildFileError) else str(exc)
