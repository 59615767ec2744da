"""The v2 backend's kernel-facing parts against a real cgroup2 tree, as root.

The tree is /sys/fs/cgroup on a pure v2 host (scripts/vm-test boots one) or the
unified tree of a hybrid host such as the CI machine (/sys/fs/cgroup/unified: no
controllers there, but the core files are the kernel's own: cgroup.procs,
cgroup.kill, cgroup.freeze, cgroup.events, and eBPF device programs). What needs the
controllers (limits, OOM kills, pids, cpu) runs in the VM lane through the
integration tests; the fake tree of test_cgroups_v2.py covers what no kernel here
can provoke (a kernel without cgroup.kill, without memory.peak, without swap).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest

from sandbox.cgroups import devices
from sandbox.cgroups.v2 import SandboxCgroupV2
from sandbox.linux import bpf

from .helpers import wait_for

pytestmark = pytest.mark.root

CGROUP_PARENT = os.environ.get("SANDBOX_CGROUP_PARENT", "sandbox")


def _cgroup2_mount() -> str | None:
    """/sys/fs/cgroup when it is cgroup2, else a hybrid host's unified tree, else None."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if " - cgroup2 " in line]
    for preferred in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if preferred in points:
            return preferred
    return points[0] if points else None


@pytest.fixture
def cgroup_dir():
    """A cgroup of this test's own in the real cgroup2 tree, removed after it (with its members)."""
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 tree is mounted")
    path = tempfile.mkdtemp(prefix=f"{CGROUP_PARENT}-real-", dir=mount)
    yield path
    SandboxCgroupV2([path]).remove()


def _join_and_run(cgroup: str, *argv: str) -> subprocess.Popen:
    """``argv`` started inside ``cgroup`` (a shell joins it, then execs argv)."""
    return subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


# -- devices ------------------------------------------------------------------------

PROBE = textwrap.dedent("""
    import os, stat, sys
    from sandbox import linux
    # nodes on a tmpfs of this process's own, mounted without nodev (the host's
    # /dev/shm may have it): only the device filter stands in the way
    d = sys.argv[1]
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("probe", d, "tmpfs", 0, "mode=0700")
    def attempt(what, fn):
        try:
            fn()
            print(f"{what}: ok")
        except OSError as exc:
            print(f"{what}: {exc.strerror}")
    def node(name, kind, major, minor):
        path = os.path.join(d, name)
        attempt(f"mknod {name}", lambda: os.mknod(path, 0o600 | kind, os.makedev(major, minor)))
        attempt(f"open {name}", lambda: os.close(os.open(path, os.O_RDONLY)))
    attempt("open /dev/null", lambda: os.close(os.open("/dev/null", os.O_RDWR)))
    node("disk", stat.S_IFBLK, 8, 0)     # sda, whether this host has one or not
    node("mem", stat.S_IFCHR, 1, 1)      # /dev/mem
    node("zero", stat.S_IFCHR, 1, 5)     # allowed: the container's /dev/zero
    node("pts9", stat.S_IFCHR, 136, 9)   # allowed: any pty
""")


def test_the_device_filter_lets_the_containers_devices_open_and_no_other(cgroup_dir, tmp_path):
    filter_ = devices.DeviceFilter()
    filter_.attach(cgroup_dir)
    assert filter_.attached(cgroup_dir)
    proc = _join_and_run(cgroup_dir, sys.executable, "-c", PROBE, str(tmp_path))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    seen = dict(line.split(": ", 1) for line in out.decode().splitlines())
    assert seen == {
        "open /dev/null": "ok",
        "mknod disk": "ok", "open disk": "Operation not permitted",  # made, never opened
        "mknod mem": "ok", "open mem": "Operation not permitted",
        "mknod zero": "ok", "open zero": "ok",
        "mknod pts9": "ok", "open pts9": seen.get("open pts9"),  # no such pty: EIO, ENXIO...
    }, out
    assert seen["open pts9"] != "Operation not permitted"


def test_attaching_the_device_filter_again_replaces_it(cgroup_dir):
    filter_ = devices.DeviceFilter()
    filter_.attach(cgroup_dir)
    filter_.attach(cgroup_dir)
    names = bpf.attached_prog_names(cgroup_dir, bpf.ATTACH_CGROUP_DEVICE)
    assert names == [devices.program_name()]
    other = devices.DeviceFilter((*devices.DEVICE_RULES, "c 1:1 r"))
    assert not other.attached(cgroup_dir)  # another rule list: another name
    other.attach(cgroup_dir)
    assert bpf.attached_prog_names(cgroup_dir, bpf.ATTACH_CGROUP_DEVICE) == \
        [devices.program_name(other.rules)]


# -- kill -----------------------------------------------------------------------------

FORKER = "while :; do sleep 100 & sleep 0.01; done"


@pytest.mark.parametrize("how", ["cgroup.kill", "freeze"])
def test_kill_ends_every_member_of_a_forking_tree(cgroup_dir, how):
    proc = _join_and_run(cgroup_dir, "sh", "-c", FORKER)
    cgroup = SandboxCgroupV2([cgroup_dir])
    wait_for(lambda: len(cgroup.pids()) >= 10)
    if how == "cgroup.kill":
        cgroup.kill()
    else:
        cgroup.freeze_and_kill()
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert cgroup.wait_empty(timeout=10), cgroup.pids()
    with open(os.path.join(cgroup_dir, "cgroup.freeze")) as f:
        assert f.read().strip() == "0"  # thawed: the cgroup is usable again
    with open(os.path.join(cgroup_dir, "cgroup.events")) as f:
        assert "frozen 0" in f.read()
