"""Builds that are interrupted or run side by side leave the store as it was.

Ctrl-C (SIGINT) ends a build at once and it cleans up after itself; after a
SIGKILL, what the build left is exactly what `sandbox gc` removes. Several
builds of one file at once all succeed.
"""

from __future__ import annotations

import re
import signal

import pytest

from .build_support import (
    build,
    built_id,
    forget_new_tags,  # noqa: F401 - a fixture, used by pytestmark
    make_context,
    store_work_dirs,
)
from .helpers import popen_cli, sandbox_cli, wait_for

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("forget_new_tags")]

SLOW = """\
FROM busybox
COPY data /data
RUN echo started; sleep 60
"""


def _start(ctx):
    proc = popen_cli("build", "-t", "interrupted", str(ctx))
    lines = []

    def running() -> bool:  # the step's own output: its sandbox and work dir exist
        line = proc.stdout.readline()
        lines.append(line)
        return line.strip() == b"started" or line == b""

    wait_for(running, timeout=60, interval=0)
    assert lines[-1].strip() == b"started", b"".join(lines)
    return proc


def _nothing_built():
    assert b"interrupted" not in sandbox_cli("images").stdout


def test_ctrl_c_stops_a_build_and_leaves_nothing(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": SLOW, "data/x": "x"})
    proc = _start(ctx)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    proc.stdout.close()
    proc.stderr.close()
    _nothing_built()
    assert store_work_dirs() == []


def test_after_sigkill_gc_removes_what_the_build_left(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": SLOW, "data/x": "x"})
    proc = _start(ctx)
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    assert store_work_dirs() != []  # the RUN step's writable layer, in a work dir of the store
    _nothing_built()
    gc = sandbox_cli("gc")
    assert gc.returncode == 0, gc.stderr
    assert store_work_dirs() == []
    # the steps that finished are build cache, which prune removes; the build can go on
    out = build(ctx, "-t", "resumed", "--dry-run")
    assert out.returncode == 0


def test_builds_of_one_file_at_once_all_succeed(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": "FROM busybox\nCOPY data /data\n"
                                                 "RUN cat /data/* > /all\nCMD cat /all\n",
                                  **{f"data/{i}": f"{i}\n" for i in range(50)}})
    procs = [popen_cli("build", "-t", f"together:{i}", str(ctx)) for i in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    for status, out, err in results:
        assert status == 0, err
        built_id(out)
    for i in range(4):
        assert sandbox_cli("run", f"together:{i}").stdout.count(b"\n") == 50
    assert store_work_dirs() == []


def test_prune_removes_the_cache_a_failed_build_left(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": "FROM busybox\nRUN head -c 100000 /dev/zero > /big\n"
                                                 "RUN exit 1\n"})
    assert build(ctx, "-t", "failed").returncode == 1
    pruned = sandbox_cli("image", "prune")
    assert pruned.returncode == 0, pruned.stderr
    entries, layers = map(int, re.match(rb"removed (\d+) build cache entries, (\d+) layers",
                                         pruned.stdout).groups())
    assert entries >= 1 and layers >= 1, pruned.stdout
    again = build(ctx, "-t", "failed")
    assert b"[2/3] DONE" in again.stdout  # the cache entry went with the prune
