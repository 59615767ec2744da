"""The per-job directory on the worker's host, and moving workspaces around.

Each running job owns ``$SANDBOX_RUN_DIR/jobs/<job id>/``: an ``owner`` file
(pid and start time of the process running the job) and ``workspace/``,
bind-mounted read-write at /workspace into every step. It is removed when the
job ends; ``collect()`` (run by every worker at start, like `sandbox gc`)
removes the directories of owners that died.

A queued job's workspace travels inside Redis as a gzipped tar (capped at
MAX_PACKED_BYTES), so a worker on another machine can run it.
"""

from __future__ import annotations

import glob
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

from sandbox import own_start_time, process_alive, run_dir

from .errors import WorkspaceError

MAX_PACKED_BYTES = 64 << 20
IGNORED = (".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".venv", "node_modules")


def jobs_dir() -> Path:
    return run_dir() / "jobs"


class JobDir:
    """The directory of one running job; a context manager that removes it."""

    def __init__(self, job_id: str) -> None:
        self.path = jobs_dir() / job_id
        self.workspace = self.path / "workspace"

    def __enter__(self) -> "JobDir":
        self.path.mkdir(parents=True, exist_ok=False)
        owner = {"pid": os.getpid(), "start": own_start_time()}
        (self.path / "owner").write_text(json.dumps(owner))
        self.workspace.mkdir()
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def copy_from(self, source: str) -> None:
        """Copy a host directory in (symlinks stay links; ignored: .git, caches)."""
        try:
            shutil.copytree(source, self.workspace, symlinks=True, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(*IGNORED))
        except (OSError, shutil.Error) as exc:
            raise WorkspaceError(f"cannot copy workspace {source}: {exc}") from exc

    def unpack(self, data: bytes) -> None:
        """Extract a packed workspace; tar's 'data' filter refuses escapes and devices."""
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(self.workspace, filter="data")
        except (OSError, tarfile.TarError) as exc:
            raise WorkspaceError(f"cannot unpack the job's workspace: {exc}") from exc


def pack(source: str) -> bytes:
    """A gzipped tar of a directory, for the queue; WorkspaceError when too big.

    Leaves out what ``unpack`` would refuse (tar's 'data' filter: links to
    absolute paths or out of the directory, devices), so that one stray
    symlink (a pytest basetemp's ``*-current``, say) cannot fail the whole
    job on the worker; such a link would point at nothing there anyway.
    """
    buf = io.BytesIO()

    def skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if os.path.basename(info.name) in IGNORED:
            return None
        try:
            tarfile.data_filter(info, source)
        except tarfile.FilterError:
            return None
        return info

    try:
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
            tar.add(source, arcname=".", filter=skip)
    except OSError as exc:
        raise WorkspaceError(f"cannot pack workspace {source}: {exc}") from exc
    if buf.tell() > MAX_PACKED_BYTES:
        raise WorkspaceError(f"workspace {source} packs to {buf.tell() >> 20} MiB, over the "
                             f"{MAX_PACKED_BYTES >> 20} MiB a queued job may carry",
                             hint="point workspace at a smaller directory")
    return buf.getvalue()


def matches(workspace: str, pattern: str) -> list[tuple[str, str, bool]]:
    """What a glob matches in a workspace: (relative path, real path, inside), sorted.

    ``inside`` is False when the real path (links resolved) leaves the
    workspace, which untrusted code wrote: callers refuse those.
    """
    root = os.path.realpath(workspace)
    found = []
    for rel in sorted(glob.glob(pattern, root_dir=root, recursive=True)):
        real = os.path.realpath(os.path.join(root, rel))
        found.append((rel, real, real.startswith(root + os.sep)))
    return found


def collect() -> list[str]:
    """Remove the directories of jobs whose owner process died; their ids."""
    removed = []
    try:
        entries = list(jobs_dir().iterdir())
    except FileNotFoundError:
        return removed
    for path in entries:
        if not _owner_alive(path / "owner"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def _owner_alive(owner_file: Path) -> bool:
    try:
        owner = json.loads(owner_file.read_text())
    except FileNotFoundError:
        return False  # never got an owner: a crash between mkdir and write
    except (OSError, ValueError):
        return True  # being written right now
    return process_alive(owner.get("pid"), owner.get("start"))
