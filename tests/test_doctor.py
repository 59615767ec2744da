"""`sandbox doctor`: one line per host check, the fix for what is missing, a telling exit status."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from sandbox.cgroups import CgroupV2
from sandbox.doctor import (
    cgroup_v2_check,
    check_isolated_networks,
    check_per_user_counts,
    check_user_namespaces,
    filesystem_type,
    per_user_ceilings_wanted,
    run_checks,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE = re.compile(r"^(ok  |warn|FAIL)  (?P<name>[a-z0-9][a-z0-9 -]*): (?P<detail>.+)$")
CHECKS = ["root", "cgroups", "device filter", "overlay", "tmpfs", "namespaces", "netlink", "state root",
          "busybox image", "rlimits", "isolated networks", "user namespaces"]


def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", "doctor", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def _closed_port() -> int:
    """A local TCP port nothing listens on (port 1 unless something does)."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 1)) != 0:
            return 1
    pytest.skip("something listens on 127.0.0.1:1")


@pytest.mark.root
def test_doctor_prints_one_line_per_check_and_exits_0_on_this_machine():
    proc = doctor()
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(LINE.match(line) for line in lines), proc.stdout
    names = [LINE.match(line).group("name") for line in lines]
    assert len(names) == len(set(names)), proc.stdout  # one line per check
    assert set(CHECKS) <= set(names), proc.stdout      # at least the checks
    assert all(line.startswith(("ok  ", "warn")) for line in lines), proc.stdout
    assert proc.stderr == ""
    cgroups = next(line for line in lines if "cgroups:" in line)
    with open("/proc/self/mountinfo") as f:
        hybrid = any(line.split()[4] == "/sys/fs/cgroup/unified" for line in f)
    if hybrid:
        assert "cgroup v1" in cgroups and "hybrid" in cgroups, cgroups
    elif _pure_v2():  # as scripts/vm-test's guest, whose root enables our controllers
        assert re.search(r"cgroup v2 \(.*memory.*\); memory, pids, cpu, cpuset delegated to "
                         r"sandboxes \(/sys/fs/cgroup\b", cgroups), cgroups
        devices = next(line for line in lines if "device filter:" in line)
        assert devices.startswith("ok") and "eBPF" in devices, devices
        migration = next(line for line in lines if "cgroup migration:" in line)
        assert "favordynmods on" in migration, migration


def _pure_v2() -> bool:
    with open("/proc/self/mountinfo") as f:
        mounts = [(line.split()[4], line.split(" - ")[1].split()[0]) for line in f]
    return ("/sys/fs/cgroup", "cgroup2") in mounts and not any(t == "cgroup" for _, t in mounts)


def test_doctor_with_an_unreachable_redis_fails_with_the_fix():
    port = _closed_port()
    proc = doctor("--redis", f"redis://127.0.0.1:{port}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert all(LINE.match(line) for line in lines), proc.stdout
    redis_lines = [line for line in lines if LINE.match(line).group("name") == "redis"]
    assert len(redis_lines) == 1, proc.stdout
    line = redis_lines[0]
    assert line.startswith("FAIL  redis: ")
    assert f"127.0.0.1:{port}" in line
    assert " -> " in line and "redis" in line.split(" -> ", 1)[1]  # the fix


def test_doctor_checks_are_data_with_a_fix_for_every_required_failure():
    for check in run_checks():
        assert check.name and check.detail
        if not check.ok and check.required:
            assert check.fix, check


def test_doctor_rejects_an_unknown_option_with_125():
    proc = doctor("--no-such-option")
    assert proc.returncode == 125
    assert len(proc.stderr.splitlines()) == 1


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
25 22 0:21 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw
26 22 0:22 / /run rw,nosuid shared:4 - ext4 /dev/vda rw
27 26 0:23 / /run rw,nosuid shared:5 - tmpfs tmpfs rw,mode=755
"""


def test_the_file_system_of_a_path_is_its_deepest_mount_and_the_last_stacked_one(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    assert filesystem_type("/dev/shm/not-made-yet/run", str(mountinfo)) == "tmpfs"  # an ancestor's
    assert filesystem_type("/run/sandbox", str(mountinfo)) == "tmpfs"  # over the ext4 /run
    assert filesystem_type("/no-such-top-dir/x", str(mountinfo)) == "ext4"  # only / holds it
    assert filesystem_type("/", str(mountinfo)) == "ext4"
    spaced = tmp_path / "with space"
    spaced.mkdir()
    escaped = str(spaced).replace(" ", "\\040")  # as the kernel writes it
    mountinfo.write_text(MOUNTINFO + f"28 22 0:24 / {escaped} rw shared:6 - ramfs ramfs rw\n")
    assert filesystem_type(str(spaced / "run"), str(mountinfo)) == "ramfs"


def test_isolated_networks_need_linux_4_18_and_say_what_fails_without():
    for release in ("4.18.0-553.el8", "6.1.0-57-amd64", "10.0"):
        check = check_isolated_networks(release)
        assert check.ok and release in check.detail, release
    for release in ("4.14.336", "3.10.0-1160.el7.x86_64", "unknown"):
        check = check_isolated_networks(release)
        assert not check.ok and not check.required and "4.18" in check.fix, release
        assert "isolated network" in check.detail and release in check.detail, release


def test_live_state_off_a_tmpfs_is_a_warning_with_the_fix(monkeypatch):
    monkeypatch.setenv("SANDBOX_RUN_DIR", "/")
    check = next(c for c in run_checks() if c.name == "live state")
    kind = filesystem_type("/")
    assert check.ok == (kind in ("tmpfs", "ramfs")) and not check.required
    if not check.ok:
        assert "SANDBOX_RUN_DIR" in check.fix and kind in check.detail



def test_per_user_counts_below_what_memory_reaches_are_a_warning_with_the_fix():
    memory = 8 << 30
    wanted = per_user_ceilings_wanted(memory)
    assert wanted == {"fs/inotify/max_user_instances": memory // 512,
                      "fs/inotify/max_user_watches": memory // 64,
                      "fs/epoll/max_user_watches": memory // 64}
    assert per_user_ceilings_wanted(1 << 40)["fs/inotify/max_user_watches"] == 2**31 - 1
    defaults = {"fs/inotify/max_user_instances": "128", "fs/inotify/max_user_watches": "8192",
                "fs/epoll/max_user_watches": str(memory // 64)}
    check = check_per_user_counts(memory, defaults.get)
    assert not check.ok and not check.required
    assert check.detail.startswith("fs.inotify.max_user_instances 128, "
                                   "fs.inotify.max_user_watches 8192: ")
    assert f"sysctl -w fs.inotify.max_user_instances={memory // 512}" in check.fix
    assert "fs.epoll" not in check.fix  # at what memory reaches: enough
    raised = {name: str(value) for name, value in wanted.items()}
    assert check_per_user_counts(memory, raised.get).ok
    assert check_per_user_counts(memory, lambda name: None).ok  # a kernel without them


def test_per_user_counts_here_are_raised_by_the_setup():
    """scripts/setup.sh raised them on this machine (and keeps them in /etc/sysctl.d)."""
    check = check_per_user_counts()
    if not check.ok:
        pytest.skip(f"{check.detail}: {check.fix}")
    assert "bounded by its own --memory and nofile" in check.detail


@pytest.mark.root
def test_user_namespaces_are_checked_by_starting_a_sandbox_in_one(monkeypatch):
    """It works here (scripts/setup.sh adds the subuid entries); the line says whether it
    is the default, and what sandboxes share when it is not."""
    monkeypatch.delenv("SANDBOX_USERNS", raising=False)
    check = check_user_namespaces()
    assert check.ok and not check.required, check
    assert "--userns=auto works here; not the default" in check.detail
    assert "sandboxes run as the host's root" in check.detail
    monkeypatch.setenv("SANDBOX_USERNS", "auto")
    check = check_user_namespaces()
    assert check.ok and "works and is the default" in check.detail, check


@pytest.mark.root
def test_user_namespaces_without_a_uid_range_are_a_warning_with_the_fix(monkeypatch, tmp_path):
    empty = tmp_path / "subuid"
    empty.write_text("someone:100000:65536\n")
    monkeypatch.setenv("SANDBOX_SUBUID", str(empty))
    check = check_user_namespaces()
    assert not check.ok and not check.required, check
    assert check.detail.startswith("--userns=auto does not work here: no uid range"), check
    assert "/etc/subuid" in check.fix


def test_user_namespaces_are_not_checked_without_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    check = check_user_namespaces()
    assert check.ok and not check.required and "needs root" in check.detail


# -- a pure cgroup v2 host, as a directory laid out like its root ---------------------

@pytest.fixture
def v2_root(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"35 24 0:30 / {root} rw,nosuid,nodev,noexec shared:9 - cgroup2 cgroup2 rw\n")
    return root, mountinfo


def test_doctor_on_v2_names_the_controllers_and_what_reaches_the_sandboxes(v2_root, monkeypatch):
    root, mountinfo = v2_root
    monkeypatch.setenv("SANDBOX_CGROUP_PARENT", "sandbox")
    check = cgroup_v2_check(CgroupV2(str(root)), str(mountinfo))
    assert check.ok, check
    assert check.detail == ("cgroup v2 (cpuset, cpu, io, memory, hugetlb, pids, rdma, misc); "
                            "memory, pids, cpu, cpuset not yet enabled in "
                            f"{root}/cgroup.subtree_control (the next sandbox enables them)")
    (root / "cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    check = cgroup_v2_check(CgroupV2(str(root)), str(mountinfo))
    assert check.detail.endswith(f"; memory, pids, cpu, cpuset delegated to sandboxes ({root})")
    (root / "sandbox").mkdir()  # the parent, not (yet) delegating
    (root / "sandbox" / "cgroup.subtree_control").write_text("memory pids\n")
    check = cgroup_v2_check(CgroupV2(str(root)), str(mountinfo))
    assert check.ok and f"not yet enabled in {root}/sandbox/cgroup.subtree_control" in check.detail
    (root / "sandbox" / "cgroup.subtree_control").write_text("cpuset cpu memory pids\n")
    check = cgroup_v2_check(CgroupV2(str(root)), str(mountinfo))
    assert check.detail.endswith(f"delegated to sandboxes ({root} and {root}/sandbox)")


def test_doctor_on_v2_fails_without_memory_or_on_a_read_only_mount(v2_root):
    root, mountinfo = v2_root
    (root / "cgroup.controllers").write_text("cpuset cpu io pids\n")
    check = cgroup_v2_check(CgroupV2(str(root)), str(mountinfo))
    assert not check.ok and check.detail == "cgroup v2 lacks memory" and "+memory" in check.fix
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    mountinfo.write_text(mountinfo.read_text().replace(" rw,nosuid", " ro,nosuid"))
    check = cgroup_v2_check(CgroupV2(str(root)), str(mountinfo))
    assert not check.ok and "read-only" in check.detail and "remount,rw" in check.fix
