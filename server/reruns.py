"""The workspaces of the jobs submitted through the daemon, kept so a job can be run again.

A queued job's workspace leaves Redis when a worker takes it, and an
in-process job's is unpacked and dropped; the console's "re-run" button
needs it again. The daemon keeps each upload in
``$SANDBOX_STATE_DIR/daemon/workspaces/<job id>`` (mode 0600), the jobs of
one submission sharing one file (hard links), and drops the oldest beyond
MAX_BYTES: a job whose workspace was dropped can no longer be re-run (409),
one submitted without a workspace always can. A job submitted elsewhere
(another daemon, `sandbox submit` straight to Redis) cannot: its workspace
was never seen here.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from sandbox import StateError, lib_dir

MAX_BYTES = 512 << 20
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NONE = b""  # the file of a job submitted without a workspace is empty


class Workspaces:
    """Uploaded workspaces by job id, bounded in total size."""

    def __init__(self, root: Path | None = None, max_bytes: int = MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _dir(self) -> Path:
        return self.root or lib_dir() / "daemon" / "workspaces"

    def _path(self, job_id: str) -> Path:
        if not _ID_RE.match(job_id):
            raise StateError(f"invalid job id {job_id!r}")
        return self._dir() / job_id

    def keep(self, job_ids: list[str], packed: bytes | None) -> None:
        """Remember what these jobs were submitted with (None: no workspace)."""
        if not job_ids:
            return
        with self._lock:
            directory = self._dir()
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            first = self._path(job_ids[0])
            fd = os.open(first, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(packed or NONE)
            for job_id in job_ids[1:]:
                os.link(first, self._path(job_id))
            self._trim(directory)

    def get(self, job_id: str) -> bytes | None:
        """The workspace a job was submitted with (None: it had none); StateError when this
        daemon did not see the submission or no longer keeps it."""
        try:
            data = self._path(job_id).read_bytes()
        except FileNotFoundError:
            raise StateError(f"job {job_id} cannot be run again from here: this daemon does not "
                             "keep its workspace (submitted elsewhere, or dropped as the oldest)",
                             hint="submit its job file again") from None
        return data or None

    def _trim(self, directory: Path) -> None:
        files = sorted((p.stat().st_mtime, p) for p in directory.iterdir() if p.is_file())
        inodes: dict[int, int] = {}
        for _mtime, path in files:
            stat = path.stat()
            inodes[stat.st_ino] = stat.st_size
        total = sum(inodes.values())
        for _mtime, path in files:
            if total <= self.max_bytes:
                break
            stat = path.stat()
            path.unlink()
            if stat.st_nlink == 1:
                total -= stat.st_size
