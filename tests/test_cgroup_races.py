"""A sandbox's cgroup read or killed from outside (`sandbox rm -f`, gc) while its owner's
teardown removes it: nothing to kill is not an error.

The interleavings are made exact: the real kernel answers, only the moment of the
owner's removal is chosen (right after the outside reader opened a file of it).
"""

import builtins
import os

import pytest

from sandbox import Limits
from sandbox.cgroups import base, host_cgroups

pytestmark = pytest.mark.root


@pytest.fixture
def empty_cgroup():
    """A sandbox cgroup with no member, made on this host's hierarchy, removed after."""
    cgroup = host_cgroups().plan(f"races{os.getpid()}", Limits(memory="64m", pids=16))
    cgroup.make(Limits(memory="64m", pids=16))
    yield cgroup
    cgroup.remove()


def _remove_dirs(cgroup) -> None:
    for path in reversed(cgroup.paths):
        if os.path.isdir(path):
            os.rmdir(path)


def test_members_listed_while_the_owner_removes_the_cgroup_are_none(empty_cgroup, monkeypatch):
    real_open = builtins.open

    def open_then_removed(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        if str(path).endswith("cgroup.procs"):
            _remove_dirs(empty_cgroup)  # the owner's teardown, between our open and read
        return f

    monkeypatch.setattr(base, "open", open_then_removed, raising=False)
    assert empty_cgroup.pids() == []  # the kernel said ENODEV: it is gone, nobody runs in it
    assert empty_cgroup.gone()


def test_a_kill_meeting_the_cgroup_removed_meanwhile_returns(empty_cgroup, monkeypatch):
    module = __import__(type(empty_cgroup).__module__, fromlist=["write"])
    real_write = module.write

    def write_after_removal(path, value):
        _remove_dirs(empty_cgroup)  # the owner's teardown, just before our write
        return real_write(path, value)

    monkeypatch.setattr(module, "write", write_after_removal)
    empty_cgroup.kill()
    assert empty_cgroup.gone()
