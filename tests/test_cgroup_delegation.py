"""A sandbox delegated a cgroup subtree (``SandboxSpec.delegate_cgroup``), on the real kernel.

Its processes make cgroups of their own there for their children (what a remote
batch of the pytest plugin does for each test): those cgroups hold their own limits
(a memory hog is OOM-killed in its cgroup, the sandbox's command goes on), they stay
under the sandbox's own limits, which the sandbox cannot see or change, and the
sandbox's teardown removes whatever it left there, processes included. v1 here; the
VM lane runs the same on a pure v2 host. Under a user namespace too: the subtree is
given to the namespace's root.
"""

from __future__ import annotations

import os

import pytest

from sandbox import Limits, SandboxSpec, run
from sandbox.cgroups import host_cgroups

from .helpers import REPO

pytestmark = pytest.mark.root
MiB = 1 << 20

#: Runs in the sandbox (the host image, this checkout on its path): one line per check.
INSIDE = r"""
import errno, os, sys, time
from sandbox import Limits, delegated_cgroup

print("env", os.environ["SANDBOX_CGROUP"].split(":")[0], flush=True)

def files(top):
    for where, _dirs, names in os.walk(top):
        for name in names:
            yield os.path.join(where, name)

# the sandbox's own limits are nowhere in its view: only the subtree is
limits = [f for f in files("/sys/fs/cgroup") if os.path.basename(f) in
          ("memory.max", "memory.limit_in_bytes", "pids.max")]
own = [f for f in limits if open(f).read().strip() in (str(200 << 20), "100")]
print("shown", own, flush=True)  # the sandbox's own limit files

def child(name, limits, body):
    cgroup = delegated_cgroup(name)
    cgroup.make(limits)
    pid = os.fork()
    if pid == 0:
        for path in cgroup.procs_files:
            with open(path, "w") as f:
                f.write("0")
        code = 0
        try:
            code = body()
        finally:
            os._exit(code or 0)
    _, status = os.waitpid(pid, 0)
    return cgroup, status

def hog():
    chunks = []
    while True:
        chunks.append(b"x" * (8 << 20))

cgroup, status = child("hog", Limits(memory="48m"), hog)
stats = cgroup.stats()
print("hog", os.WIFSIGNALED(status) and os.WTERMSIG(status), stats.oom_kills, flush=True)
cgroup.remove()

def bomb():
    made = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            made += 1
    except BlockingIOError:
        return made

cgroup, status = child("bomb", Limits(pids=8), bomb)
print("bomb", os.WEXITSTATUS(status), cgroup.stats().pids_limited, flush=True)

# over the sandbox's own limit, a child's larger one does not help
cgroup, status = child("greedy", Limits(memory="1g"), hog)
print("greedy", os.WIFSIGNALED(status) and os.WTERMSIG(status), flush=True)
cgroup.remove()

# left behind with a process in it (the bomb's sleepers, too): the teardown's to remove
cgroup, _ = child("left", Limits(pids=4), lambda: os.execvp("sleep", ["sleep", "1001"]) if os.fork() == 0 else 0)
print("survived yes", flush=True)
"""


@pytest.mark.parametrize("userns", ["host", "auto"])
def test_a_delegating_sandbox_limits_its_childrens_cgroups_and_leaves_nothing(userns):
    hierarchy = host_cgroups()
    result = run(SandboxSpec(image="host", command=("python3", "-c", INSIDE),
                             env={"PYTHONPATH": REPO}, limits=Limits(memory="200m", pids=100),
                             delegate_cgroup=True, userns=userns))
    out = result.stdout.decode()
    assert result.exit_code == 0, (out, result.stderr.decode()[-3000:])
    lines = dict(line.split(" ", 1) for line in out.splitlines())  # "what value"
    assert lines["env"] == f"v{hierarchy.version}"
    assert lines["shown"] == "[]"
    assert lines["hog"] == "9 1"  # SIGKILL, counted by its own cgroup
    made, limited = lines["bomb"].split()
    assert int(made) < 8 and int(limited) > 0  # forks refused by its own pids.max
    assert lines["greedy"] == "9"
    assert lines["survived"] == "yes"
    assert hierarchy.leftovers() == []
    assert not _running("sleep 1001") and not _running("sleep 30")


def test_a_sandbox_not_delegated_one_sees_no_cgroup_and_has_a_namespace_of_its_own():
    script = ("import os; print(os.listdir('/sys/fs/cgroup'), 'SANDBOX_CGROUP' in os.environ,"
              " open('/proc/self/cgroup').read().split(':')[-1].strip())")
    result = run(SandboxSpec(image="host", command=("python3", "-c", script)))
    assert result.stdout.decode().split() == ["[]", "False", "/"]


def _running(cmdline: str) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().replace(b"\0", b" ").strip() == cmdline.encode():
                    return True
        except OSError:
            continue
    return False


#: A remote batch's way: the parent opens the cgroup's files, a nested copy (its own user
#: and pid namespaces) joins through them, then hogs memory.
NESTED = r"""
import os
from sandbox import Limits, delegated_cgroup, fork_nested

cgroup = delegated_cgroup("test-0")
cgroup.make(Limits(memory="48m", pids=16))
join = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in cgroup.procs_files]
pid = fork_nested("default")
if pid == 0:
    for fd in join:
        os.write(fd, b"0")
    chunks = []
    while True:
        chunks.append(b"x" * (8 << 20))
for fd in join:
    os.close(fd)
_, status = os.waitpid(pid, 0)
print(os.WIFSIGNALED(status) and os.WTERMSIG(status), cgroup.stats().oom_kills)
cgroup.remove()
"""


def test_a_nested_copy_joins_its_cgroup_through_files_its_parent_opened():
    """Moving a process takes write access the copy's own namespaces do not give it (on v2
    with nsdelegate, seen from the opener's cgroup namespace): the parent's open files do."""
    result = run(SandboxSpec(image="host", command=("python3", "-c", NESTED), env={"PYTHONPATH": REPO},
                             limits=Limits(memory="200m", pids=100), delegate_cgroup=True,
                             seccomp="nested"))
    assert result.exit_code == 0, result.stderr.decode()[-3000:]
    assert result.stdout.decode().split() == ["9", "1"]  # SIGKILL, by its own cgroup's OOM killer
    assert not result.oom_killed  # the sandbox's own limit was never reached
    assert host_cgroups().leftovers() == []
