"""Builds: an image from a Sandboxfile (Dockerfile syntax), step by step, cached.

The pipeline, after BuildKit's Dockerfile front end::

    parse.py         text -> nodes (keyword, arguments, original lines)
    instructions.py  node -> one typed command (frozen dataclass with a Location)
    steps.py, plan.py  commands -> stages linked and pruned, steps with ARG/ENV expanded,
                     numbered, each with its canonical instruction (the cache key's text)
    execute.py       the plan run: FROM resolved, each RUN/COPY/ADD reused from the build
                     cache or made (run_step, copy_step), the image written and tagged
    frontend.py      the first three in one call, the file name added to errors, ``dump``
    context.py, ignore.py  what COPY may read (.dockerignore), safely, and its digest
    progress.py      the output, in BuildKit's shape; source.py the error printer

``build_image`` is the call for code outside the CLI (jobs, the pytest plugin),
``build_plan_text`` what a dry run prints;
``uploaded_context`` unpacks a context that came as a tar (the daemon's build).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ...spec import Limits, NetworkSpec

if TYPE_CHECKING:  # not at run time: the build's modules load when a build starts
    from .cancel import BuildCancel
    from .progress import TextOut
    from .storage import StoredImage


def build_image(context: str, *, tags: tuple[str, ...] = (), file: str | None = None,
                build_args: Mapping[str, str] | None = None, target: str | None = None,
                network: str = "none", egress: bool = False, limits: Limits | None = None,
                no_cache: bool = False, out: TextOut | None = None, quiet: bool = False,
                shown_file: str | None = None, cancel: BuildCancel | None = None) -> StoredImage:
    """Build the Sandboxfile ``file`` (default: the context's) and tag it; the StoredImage.

    Progress goes to ``out`` (stdout by default); errors name the file as
    ``shown_file`` (default: ``file`` as given). Raises BuildFileError for a
    file or context that cannot be built as written, BuildStepFailed when a
    RUN step fails (its exit status and last output lines on it), BuildCancelled once
    ``cancel`` (a ``BuildCancel``: its ``set`` stops the build from any thread) is set.
    """
    from .execute import BuildRequest, build
    from .frontend import default_file

    path = file or default_file(context)
    request = BuildRequest(context=os.path.abspath(context), file=path, tags=tuple(tags),
                           build_args=dict(build_args or {}), target=target, no_cache=no_cache,
                           network=NetworkSpec(network, egress=egress), limits=limits or Limits(),
                           shown_file=shown_file or path)
    return build(request, out=out, quiet=quiet, cancel=cancel).image


def build_plan_text(file: str, *, shown_file: str | None = None,
                    build_args: Mapping[str, str] | None = None, target: str | None = None) -> str:
    """What `sandbox build --dry-run` prints: the plan of the Sandboxfile ``file`` against
    this host's store (its FROM images' configs), stages and steps; nothing is built.
    BuildFileError, naming the file as ``shown_file``, when it cannot be planned."""
    from .frontend import dump, plan_text, read_file
    from .storage import Bases

    plan = plan_text(read_file(file), shown_file or file, base_config=Bases().config,
                     build_args=build_args, target=target)
    return dump(plan)


@contextmanager
def uploaded_context(data: bytes, *, max_members: int, max_bytes: int) -> Iterator[Path]:
    """A private work dir holding ``context/``, the (compressed) tar ``data`` unpacked there.

    The tar is untrusted: it goes through the unpacker a job's workspace takes
    (nothing written outside, no link followed, no device nodes, bounded in
    members and bytes: UnpackError). The dir is removed at the end, and by
    `sandbox gc` when its process was killed meanwhile.
    """
    from .. import layout
    from ..untrusted import unpack_tar_into

    with layout.work_dir("context") as work:
        (work / "context").mkdir(mode=0o700)
        unpack_tar_into(data, str(work / "context"), max_members=max_members, max_bytes=max_bytes)
        yield work
