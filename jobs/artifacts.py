"""Artifacts: files a job leaves in its workspace, collected after the steps.

Where they are stored (the choice, documented in README.md):

- queued jobs: in Redis, next to the job (``sandbox:job:<id>:artifacts``, a
  hash of path -> bytes) with the job's TTL; each file is capped at
  MAX_FILE_BYTES and a job at MAX_TOTAL_BYTES, so a client on any machine
  fetches them with `sandbox jobs artifacts ID`. Files over a cap are listed
  with their size and digest but not stored.
- embedded runs: under ``$SANDBOX_STATE_DIR/artifacts/<job id>/``.

Only regular files inside the workspace are taken; a symlink that leaves it
is refused (the workspace was written by untrusted code), and the globs never
enter a symlinked directory. Finding, reading and hashing spend the job's
``Budget`` (its timeout, its cancel): GlobStopped ends the collection.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from sandbox import state

from .globbing import Budget
from .result import Artifact
from .workspace import matches as workspace_matches

MAX_FILE_BYTES = 8 << 20
MAX_TOTAL_BYTES = 32 << 20


def collect(workspace: str, patterns: Iterable[str], budget: Budget | None = None,
            ) -> tuple[list[tuple[Artifact, bytes | None]], list[str]]:
    """([(Artifact, content or None when over a cap)], problems) for the globs."""
    budget = budget or Budget()
    found: list[tuple[Artifact, bytes | None]] = []
    problems: list[str] = []
    seen, total = set(), 0
    for pattern in patterns:
        matched = workspace_matches(workspace, pattern, budget)
        if not matched:
            problems.append(f"artifact {pattern}: nothing matched")
        for rel, real, inside in matched:
            if rel in seen or not os.path.isfile(real):
                continue
            if not inside:
                problems.append(f"artifact {rel}: refused, it points outside the workspace")
                continue
            seen.add(rel)
            size = os.path.getsize(real)
            fits = size <= MAX_FILE_BYTES and total + size <= MAX_TOTAL_BYTES
            data = Path(real).read_bytes() if fits else None
            total += size if fits else 0
            found.append((Artifact(rel, size, _sha256(real, budget), stored=fits), data))
    return found, problems


def _sha256(path: str, budget: Budget) -> str:
    """The file's digest, read a MiB at a time, each checked against the budget (a step
    can leave a 1 TiB sparse file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            budget.check()
            digest.update(block)
    return digest.hexdigest()


def local_dir(job_id: str) -> Path:
    """Where an embedded run keeps its artifacts."""
    return state.lib_dir() / "artifacts" / job_id


def save_local(job_id: str, items: list[tuple[Artifact, bytes | None]]) -> Path:
    """Write stored artifacts under local_dir(job_id); the directory."""
    base = local_dir(job_id)
    for art, data in items:
        if data is None:
            continue
        dest = base / art.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return base
