"""Helpers for the build tests: contexts written from a dict, `sandbox build` as users run it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .helpers import sandbox_cli

_STEP = re.compile(rb"^\[(?:\S+ )?(\d+)/\d+\] (CACHED|DONE|ERROR)\b", re.M)


def make_context(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (path -> content) under ``root``; the root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def build(context: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return sandbox_cli("build", *args, str(context), timeout=timeout)


def step_states(output: bytes) -> dict[int, str]:
    """Step number -> "CACHED", "DONE" or "ERROR", from a build's output (layer steps only)."""
    return {int(n): what.decode() for n, what in _STEP.findall(output)}


def built_id(output: bytes) -> str:
    match = re.search(rb"^built (sha256:[0-9a-f]{64})", output, re.M)
    assert match, output.decode()
    return match.group(1).decode()


def store_work_dirs() -> list[str]:
    """Work dirs left in the image store (a build that did not clean up)."""
    path = os.path.join(os.environ["SANDBOX_STATE_DIR"], "images", "tmp")
    try:
        return [n for n in os.listdir(path) if not n.startswith(".")]
    except FileNotFoundError:
        return []


@pytest.fixture
def forget_new_tags():
    """Remove the tags a test made and prune what only they and the build cache held, so
    the store holds for the next test what it held before."""
    from sandbox.images import list_images, prune, remove_image

    before = {tag for image in list_images() for tag in image.tags}
    yield
    for image in list_images():
        for tag in image.tags:
            if tag not in before:
                remove_image(tag, force=True)
    prune()
