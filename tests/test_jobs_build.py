"""Jobs that build their image from a Sandboxfile before their steps, here and on workers."""

from __future__ import annotations

import os

import pytest

from jobs import load_job_file, run_job

from .build_support import forget_new_tags  # noqa: F401 - a fixture, used by pytestmark
from .jobs_support import ROOT, job_file, queue, redis_url, workers  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("forget_new_tags")]


def test_the_example_job_builds_its_image_and_runs_its_steps_in_it():
    (spec,) = load_job_file(os.path.join(ROOT, "examples", "built-image.toml"))
    events = []
    result = run_job(spec, on_event=events.append)
    assert result.status == "passed", result.error
    out = b"".join(e.data for e in events if e.kind == "out")
    assert b"[4/7] RUN chmod 755 /usr/local/bin/greet" in out and b"hello, jobs\n" in out
    again = run_job(spec, on_event=events.append)  # the build is cached
    assert again.status == "passed"
    assert b"[4/7] CACHED" in b"".join(e.data for e in events[len(events) // 2:] if e.kind == "out")


BROKEN = """
    name = "broken build"
    workspace = "ws"
    build = "ws/Sandboxfile"
    [[steps]]
    name = "never"
    run = "echo never runs"
"""


@pytest.mark.parametrize("sandboxfile, status, message", [
    ("FROM busybox\nRUN echo failing; exit 3\n", "failed", "Sandboxfile:2: RUN echo failing; exit 3: exit code 3"),
    ("FROM busybox\nVOLUME /x\n", "error", "Sandboxfile:2: VOLUME is not supported"),
    ("FROM nosuch:1\n", "error", "image 'nosuch:1' not found"),
])
def test_a_build_that_fails_fails_the_job_before_its_steps(tmp_path, sandboxfile, status, message):
    (spec,) = load_job_file(job_file(tmp_path, BROKEN, {"Sandboxfile": sandboxfile}))
    events = []
    result = run_job(spec, on_event=events.append)
    assert result.status == status and message in result.error and result.error.startswith("build: ")
    assert not result.steps and not any(e.data == b"echo never runs" for e in events)


def test_a_queued_job_builds_from_its_workspace_on_the_worker(redis_url, queue, workers, tmp_path):
    workers.start()
    (spec,) = load_job_file(job_file(tmp_path, """
        name = "queued build"
        image = "queued-build:1"
        workspace = "ws"
        build = "ws/Sandboxfile"
        [[steps]]
        name = "use"
        run = "cat /baked && cat data.txt"
    """, {"Sandboxfile": "FROM busybox\nCOPY data.txt /baked\n", "data.txt": "from the workspace\n"}))
    events = []
    result = run_job(spec, redis=redis_url, queue=queue, on_event=events.append, timeout=120)
    assert result.status == "passed", result.error
    out = [e.data for e in events if e.kind == "out" and e.step == "use"]
    assert b"".join(out) == b"from the workspace\nfrom the workspace\n"


def test_a_queued_job_builds_only_a_sandboxfile_of_its_workspace(redis_url, queue, workers, tmp_path):
    workers.start()
    (tmp_path / "Sandboxfile").write_text("FROM busybox\n")
    (spec,) = load_job_file(job_file(tmp_path, """
        name = "outside"
        workspace = "ws"
        build = "Sandboxfile"
        [[steps]]
        name = "never"
        run = "true"
    """, {"data.txt": "x"}))
    result = run_job(spec, redis=redis_url, queue=queue, timeout=120)
    assert result.status == "error" and "not in the job's workspace" in result.error
    assert run_job(spec).status == "passed"  # here, the submitter's own file is fine
