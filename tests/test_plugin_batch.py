"""Parts of a remote batch's pytest (``pytest_sandbox.batch``) that need no worker."""

from __future__ import annotations

import os

from pytest_sandbox import batch
from sandbox import Limits


def test_a_copy_that_cannot_join_its_cgroup_ends_saying_why(tmp_path):
    """Exit 125 with one line on its stderr: the test then fails with that line, as any
    test whose copy ended before it reported."""
    readonly = os.open(tmp_path / "cgroup.procs", os.O_RDONLY | os.O_CREAT)
    stderr_r, stderr_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(stderr_w, 2)
        batch._join([readonly])
        os._exit(0)
    os.close(stderr_w)
    _, status = os.waitpid(pid, 0)
    said = os.read(stderr_r, 4096).decode()
    os.close(stderr_r)
    os.close(readonly)
    assert os.waitstatus_to_exitcode(status) == 125
    assert said.startswith("sandbox: cannot join the test's cgroup: [Errno 9] Bad file descriptor")


def test_each_tests_limits_travel_as_the_session_set_them():
    limits = Limits(memory="128m", pids=16, cpus=0.5)

    class Config:
        def getoption(self, name):
            assert name == "sandbox_batch_limits"
            return batch.encode_limits(limits)

    got = batch.each_tests_limits(Config())
    assert (got.memory, got.memory_swap, got.pids, got.cpus) == (128 << 20, None, 16, 0.5)
