"""The per-job directory on the worker's host, and moving workspaces around.

Each running job owns ``$SANDBOX_RUN_DIR/jobs/<job id>/`` (mode 0700: what a
job leaves there, setuid files included, is for its sandboxes only): an
``owner`` file (pid and start time of the process running the job) and
``workspace/``, bind-mounted read-write at /workspace into every step. It is
removed when the job ends; ``collect()`` (run by every worker at start and by
`sandbox gc`) removes the directories of owners that died.

A queued job's workspace travels inside Redis as a gzipped tar (capped at
MAX_PACKED_BYTES), so a worker on another machine can run it. Copying a
directory in and unpacking a packed workspace both go through the engine's
image unpacker (``sandbox.images.unpack``): nothing is written outside the
workspace, no link is followed, device nodes are refused, and an unpacked
workspace is bounded (MAX_UNPACKED_BYTES, MAX_MEMBERS: a gzip bomb stops there).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import tarfile
from pathlib import Path

from sandbox import UnpackError, copy_tree_into, owner_gone, run_dir, unpack_tar_into, write_owner

from .errors import WorkspaceError
from .globbing import Budget, match

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_PACKED_BYTES = 64 << 20
MAX_UNPACKED_BYTES = 2 << 30
MAX_MEMBERS = 500_000
#: The file of a running job's workspace that holds the lines told to the job (``store.tell``).
INBOX = ".sandbox-inbox"
IGNORED = (".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".venv", "node_modules", INBOX)


def jobs_dir() -> Path:
    return run_dir() / "jobs"


class JobDir:
    """The directory of one running job; a context manager that removes it."""

    def __init__(self, job_id: str) -> None:
        if not _JOB_ID_RE.match(job_id or ""):  # it names a directory that is removed at the end
            raise WorkspaceError(f"invalid job id {job_id!r}: expected letters, digits, '_', '-'")
        self.path = jobs_dir() / job_id
        self.workspace = self.path / "workspace"

    def __enter__(self) -> "JobDir":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.mkdir(mode=0o700)
        write_owner(self.path)
        self.workspace.mkdir()
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def copy_from(self, source: str) -> None:
        """Copy a host directory in (symlinks stay links, never followed; ignored: .git, caches)."""
        try:
            fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise WorkspaceError(f"cannot copy workspace {source}: {exc.strerror}") from exc
        try:
            copy_tree_into(fd, str(self.workspace), exclude=IGNORED)
        except UnpackError as exc:
            raise WorkspaceError(f"cannot copy workspace {source}: {exc.message}") from exc
        finally:
            os.close(fd)

    def unpack(self, data: bytes) -> None:
        """Unpack a packed workspace: the unpacker refuses escapes and devices, and bounds it."""
        try:
            unpack_tar_into(data, str(self.workspace), max_members=MAX_MEMBERS,
                            max_bytes=MAX_UNPACKED_BYTES)
        except UnpackError as exc:
            raise WorkspaceError(f"cannot unpack the job's workspace: {exc.message}") from exc


def has_workspace(job_id: str) -> bool:
    """Whether the job runs here and has its workspace (lines told to it can be delivered)."""
    return JobDir(job_id).workspace.is_dir()


def deliver(job_id: str, lines: list[bytes]) -> None:
    """Append lines told to a running job to its workspace's inbox file (``INBOX``).

    The workspace is the job's: the file is only ever written if it is a
    regular file (or made one), never through a link or into a FIFO.
    """
    workspace = JobDir(job_id).workspace
    try:
        fd = os.open(workspace / INBOX, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError:
        return  # not running here (yet, or any more), or not a file we may write
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    except OSError:
        pass
    finally:
        os.close(fd)


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


def matches(workspace: str, pattern: str, budget: Budget | None = None) -> list[tuple[str, str, bool]]:
    """What a glob matches in a workspace: (relative path, real path, inside), sorted.

    No symlinked directory is entered on the way (``globbing``); a matched
    link is resolved, and ``inside`` is False when it leads out of the
    workspace, which untrusted code wrote: callers refuse those. GlobStopped
    when ``budget`` runs out.
    """
    root = os.path.realpath(workspace)
    found = []
    for rel in match(root, pattern, budget):
        real = os.path.realpath(os.path.join(root, rel))
        found.append((rel, real, real.startswith(root + os.sep)))
    return found


def collect() -> list[str]:
    """Remove the directories of jobs whose owner process died; their ids.

    Run by every worker at start and by `sandbox gc` (a killed in-process
    `sandbox submit` leaves one too).
    """
    removed: list[str] = []
    try:
        entries = list(jobs_dir().iterdir())
    except FileNotFoundError:
        return removed
    for path in entries:
        if owner_gone(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed
