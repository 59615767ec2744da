"""A job's ``build``: its image made from a Sandboxfile before the steps.

The build is `sandbox build` (``sandbox.build_image``), so it is cached the
same way: a job whose Sandboxfile and context did not change gets its image
at once. Its output goes to the job's log under the step name ``build``,
framed by two notes. The steps run in the image by id, so another job that
moves the same tag meanwhile changes nothing for this one.
"""

from __future__ import annotations

import io
import os

from sandbox import Limits

from .errors import JobError
from .events import JobLog
from .model import BuildSpec

STEP = "build"


class BuildFailed(JobError):
    """The job's image could not be built; ``failed`` is True when a RUN step failed
    (the job then ends ``failed``), False when the build could not run (``error``)."""

    def __init__(self, message: str, *, failed: bool) -> None:
        super().__init__(message)
        self.failed = failed


class _LogWriter(io.TextIOBase):
    """The build's progress as ``out`` events of the job's log."""

    def __init__(self, log: JobLog) -> None:
        self.log = log

    def write(self, text: str) -> int:
        self.log.emit("out", step=STEP, stream="stdout", data=text.encode())
        return len(text)


def build_job_image(spec: BuildSpec, *, source_workspace: str | None, workspace: str,
                    limits: Limits, log: JobLog, queued: bool = False) -> str:
    """Build the job's image; its id. BuildFailed when it cannot be built.

    ``queued``: the job came through the queue, so the Sandboxfile must be in
    its workspace: a worker never builds from a path of its own host a job names.
    """
    from sandbox import BuildFileError, BuildStepFailed, SandboxError, build_image

    path = _located(spec.file, source_workspace, workspace, queued)
    log.emit("note", data=f"building the image from {os.path.basename(path)}".encode())
    try:
        image = build_image(os.path.dirname(path), file=path, tags=(spec.tag,) if spec.tag else (),
                            build_args=spec.args, target=spec.target, network=spec.network,
                            egress=spec.egress, limits=limits, out=_LogWriter(log))
    except BuildStepFailed as exc:
        raise BuildFailed(f"build: {exc}", failed=True) from exc
    except (BuildFileError, SandboxError) as exc:
        raise BuildFailed(f"build: {exc}", failed=False) from exc
    return image.id


def _located(path: str, source_workspace: str | None, workspace: str, queued: bool) -> str:
    """The Sandboxfile in the job's copy of the workspace when it lies in the workspace."""
    if source_workspace:
        rel = os.path.relpath(path, source_workspace)
        if rel != ".." and not rel.startswith("../"):
            return os.path.join(workspace, rel)
    if queued:
        raise BuildFailed(f"build: {path} is not in the job's workspace: a queued job builds "
                          "only a Sandboxfile of its workspace", failed=False)
    return path
