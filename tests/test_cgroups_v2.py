"""The cgroup backends against a tree laid out as the kernel lays it out (no root needed).

This machine runs cgroup v1 (hybrid), so the v2 backend cannot be run for
real here. Instead a temp dir stands in for cgroupfs: ``FakeCgroupFS`` plays
the kernel's part of it, which is what a plain directory cannot do by itself:

- ``mkdir`` in the tree makes the interface files the kernel would make
  (core files, plus each controller's files when the parent delegates it);
- ``rmdir`` of a cgroup removes it with its interface files;
- the engine may only write files that exist: after each operation the test
  checks that no file was created by the engine (on a real cgroupfs such a
  write fails).

The backends themselves (sandbox.cgroups.v2 / v1) are real and unmodified;
only the kernel is stood in for. Values are asserted exactly as written.
Also here: layout detection from sample mountinfo texts.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from sandbox.cgroups import CgroupStats, CgroupV1, CgroupV2, delegated_cgroup, detect
from sandbox.cgroups.v1 import DEVICE_RULES
from sandbox.errors import HostError, LimitError
from sandbox.spec import Limits

MiB = 1 << 20
PARENT = os.environ.get("SANDBOX_CGROUP_PARENT", "sandbox")

# -- the fake kernel -------------------------------------------------------------

V2_CORE = {
    "cgroup.procs": "", "cgroup.threads": "", "cgroup.type": "domain\n",
    "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0\n", "cgroup.kill": "",
    "cgroup.max.depth": "max\n", "cgroup.max.descendants": "max\n", "cgroup.stat": "",
    "cgroup.subtree_control": "",  # the kernel shows an empty mask as an empty file
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",  # core since 5.x
}
V2_CONTROLLER_FILES = {
    "memory": {"memory.max": "max\n", "memory.high": "max\n", "memory.low": "0\n",
               "memory.min": "0\n", "memory.current": "0\n", "memory.peak": "0\n",
               "memory.swap.max": "max\n", "memory.swap.current": "0\n",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
               "memory.stat": ""},
    "cpu": {"cpu.max": "max 100000\n", "cpu.weight": "100\n", "cpu.max.burst": "0\n"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n", "cpuset.cpus.effective": "0-1\n",
               "cpuset.mems.effective": "0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n", "pids.peak": "0\n",
             "pids.events": "max 0\n"},
    "io": {"io.max": "", "io.stat": ""},
}
V2_ROOT_CONTROLLERS = "cpuset cpu io memory pids"

V1_CONTROLLER_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712\n",
               "memory.memsw.limit_in_bytes": "9223372036854771712\n",
               "memory.usage_in_bytes": "0\n", "memory.max_usage_in_bytes": "0\n",
               "memory.failcnt": "0\n", "memory.swappiness": "60\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n", "pids.peak": "0\n",
             "pids.events": "max 0\n"},
    "cpu": {"cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n", "cpu.shares": "1024\n"},
    "cpuacct": {"cpuacct.usage": "0\n", "cpuacct.usage_user": "0\n", "cpuacct.usage_sys": "0\n"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n"},
    "freezer": {"freezer.state": "THAWED\n"},
    "devices": {"devices.allow": "", "devices.deny": ""},  # devices.list: copied from the parent
}


class FakeDeviceFilter:
    """The kernel's bpf side of the device filter, for the fake tree: which directories
    have the program (tests/test_cgroups_real.py attaches the real one)."""

    def __init__(self) -> None:
        self.on: list[str] = []

    def attach(self, cgroup_dir: str) -> None:
        assert os.path.isdir(cgroup_dir)
        assert not _read(os.path.join(cgroup_dir, "cgroup.procs")).split(), "attached late"
        self.on.append(cgroup_dir)

    def attached(self, cgroup_dir: str) -> bool:
        return cgroup_dir in self.on and os.path.isdir(cgroup_dir)


class FakeCgroupFS:
    """The kernel's side of cgroupfs for a temp dir: interface files on mkdir, rmdir of cgroups."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: str, version: int,
                 hierarchies: dict[str, tuple[str, ...]] | None = None) -> None:
        self.root = root
        self.version = version
        self.hierarchies = hierarchies or {}  # v1: mount dir -> its controllers
        self.made: dict[str, set[str]] = {}   # cgroup dir -> interface files the kernel made
        self._mkdir, self._rmdir = os.mkdir, os.rmdir
        monkeypatch.setattr(os, "mkdir", self.mkdir)
        monkeypatch.setattr(os, "rmdir", self.rmdir)

    def _ours(self, path) -> bool:
        path = os.path.abspath(os.fspath(path))
        return path.startswith(self.root + os.sep)

    def mkdir(self, path, mode=0o777, *args, **kwargs):
        self._mkdir(path, mode, *args, **kwargs)
        path = os.path.realpath(os.fspath(path))  # the tree as a sandbox sees it: links here
        if self._ours(path):
            self.populate(path)

    def rmdir(self, path, *args, **kwargs):
        path = os.path.realpath(os.fspath(path))
        if self._ours(path) and path in self.made:
            if any(os.path.isdir(os.path.join(path, d)) for d in os.listdir(path)):
                raise OSError(16, "Device or resource busy", path)  # has child cgroups
            if _read(os.path.join(path, "cgroup.procs")).split():
                raise OSError(16, "Device or resource busy", path)  # has processes
            for name in os.listdir(path):
                os.unlink(os.path.join(path, name))
            del self.made[path]
        self._rmdir(path, *args, **kwargs)

    def populate(self, path: str) -> None:
        files: dict[str, str] = {}
        parent = os.path.dirname(path)
        if self.version == 2:
            files.update(V2_CORE)
            delegated = _enabled(_read(os.path.join(parent, "cgroup.subtree_control")))
            available = self.available(parent)
            assert delegated <= available, f"{parent}: enabled {delegated} beyond {available}"
            files["cgroup.controllers"] = " ".join(sorted(delegated)) + ("\n" if delegated else "")
            for controller in delegated:
                files.update(V2_CONTROLLER_FILES[controller])
        else:
            mount = next(m for m in self.hierarchies if path.startswith(m + os.sep))
            files.update({"cgroup.procs": "", "tasks": "", "notify_on_release": "0\n",
                          "cgroup.clone_children": "0\n"})
            for controller in self.hierarchies[mount]:
                files.update(V1_CONTROLLER_FILES[controller])
                if controller == "devices":  # a new child copies its parent's rules
                    files["devices.list"] = _read(os.path.join(parent, "devices.list"))
        for name, text in files.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(text)
        self.made[path] = set(files)

    def available(self, path: str) -> set[str]:
        """cgroup.controllers of path, as the kernel computes it now: what its parent enables."""
        if path not in self.made:  # the root
            return set(_read(os.path.join(path, "cgroup.controllers")).split())
        parent = os.path.dirname(path)
        return _enabled(_read(os.path.join(parent, "cgroup.subtree_control"))) & self.available(parent)

    def created_by_engine(self) -> dict[str, set[str]]:
        """Files in fake cgroups that the kernel did not make (a real cgroupfs refuses them)."""
        extra = {}
        for path, names in self.made.items():
            if os.path.isdir(path):
                new = {n for n in os.listdir(path) if not os.path.isdir(os.path.join(path, n))} - names
                if new:
                    extra[path] = new
        return extra


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enabled(subtree_control: str) -> set[str]:
    """Controllers a subtree_control file enables (kernel form, or the +x written to it)."""
    on: set[str] = set()
    for token in subtree_control.split():
        if token.startswith("-"):
            on.discard(token[1:])
        else:
            on.add(token.lstrip("+"))
    return on


# -- v2 -------------------------------------------------------------------------

@pytest.fixture
def v2(tmp_path, monkeypatch):
    root = str(tmp_path / "cgroup2")
    os.mkdir(root)
    _write(os.path.join(root, "cgroup.controllers"), V2_ROOT_CONTROLLERS + "\n")
    _write(os.path.join(root, "cgroup.subtree_control"), "")
    _write(os.path.join(root, "cgroup.procs"), "1\n")
    kernel = FakeCgroupFS(monkeypatch, root, 2)
    hierarchy = CgroupV2(root=root, devices=FakeDeviceFilter())
    yield hierarchy, kernel
    assert kernel.created_by_engine() == {}, "the engine wrote files the kernel does not have"


def test_v2_create_delegates_controllers_and_writes_exact_limits(v2):
    hierarchy, _kernel = v2
    limits = Limits(memory="256m", cpus=0.25, pids=64, cpuset="0")
    cgroup = hierarchy.create("abc123", limits)
    parent = os.path.join(hierarchy.root, PARENT)
    assert cgroup.paths == [os.path.join(parent, "abc123")]
    # memory, pids, cpu and cpuset delegated from the root to the parent, then to its children
    assert _enabled(_read(os.path.join(hierarchy.root, "cgroup.subtree_control"))) == \
        {"memory", "pids", "cpu", "cpuset"}
    assert _enabled(_read(os.path.join(parent, "cgroup.subtree_control"))) == \
        {"memory", "pids", "cpu", "cpuset"}
    f = lambda name: _read(os.path.join(cgroup.path, name))  # noqa: E731
    assert f("memory.max") == str(256 * MiB)
    assert f("memory.swap.max") == "0"  # swap off unless asked
    assert f("cpu.max") == "25000 100000"
    assert f("pids.max") == "64"
    assert f("cpuset.cpus") == "0"
    assert cgroup.procs_files == [os.path.join(cgroup.path, "cgroup.procs")]
    assert hierarchy.devices.on == [parent]  # the device rules: once, on the parent
    assert hierarchy.leftovers() == [cgroup.path]
    cgroup.remove()
    assert hierarchy.leftovers() == []
    hierarchy.remove_parents()
    assert not os.path.exists(parent)


def test_v2_a_delegating_sandbox_lives_in_a_leaf_beside_its_subtree(v2):
    """No v2 cgroup with controllers enabled for its children may hold processes: the
    sandbox's join ``main``, and the subtree beside it gets the limits' controllers; a
    cgroup made there (by a process inside) has them, and the sandbox's removal takes it."""
    hierarchy, _kernel = v2
    cgroup = hierarchy.create("deleg1", Limits(memory="256m", pids=64), delegate=True)
    own = cgroup.path
    assert _read(os.path.join(own, "memory.max")) == str(256 * MiB)
    assert _enabled(_read(os.path.join(own, "cgroup.subtree_control"))) == {"memory", "pids", "cpu"}
    assert cgroup.procs_files == [os.path.join(own, "main", "cgroup.procs")]
    (delegated, name), = cgroup.delegated
    assert (delegated, name) == (os.path.join(own, "delegated"), "")
    assert _enabled(_read(os.path.join(delegated, "cgroup.subtree_control"))) == {"memory", "pids", "cpu"}
    test = delegated_cgroup("test-0", {"SANDBOX_CGROUP": f"v2:{delegated}"})
    assert test is not None
    test.make(Limits(memory="64m", pids=8))
    assert _read(os.path.join(delegated, "test-0", "memory.max")) == str(64 * MiB)
    assert _read(os.path.join(delegated, "test-0", "pids.max")) == "8"
    # the kernel counts an OOM kill below in every ancestor's memory.events: the sandbox's
    # own are its processes' (main), not those the test's limit made
    _write(os.path.join(own, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    _write(os.path.join(delegated, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroup.stats().oom_kills == 0
    _write(os.path.join(own, "main", "memory.events"), "low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\n")
    assert cgroup.stats().oom_kills == 1
    cgroup.remove()  # the test's cgroup, left behind, goes with it
    assert hierarchy.leftovers() == []
    hierarchy.remove_parents()


def _kernel_root(hierarchy: CgroupV1) -> str:
    return os.path.dirname(hierarchy.mounts["memory"])


def test_v1_a_delegating_sandbox_gets_a_subtree_per_hierarchy(v1):
    hierarchy, _ = v1
    cgroup = hierarchy.create("deleg1", Limits(memory="256m", pids=64), delegate=True)
    names = {name: directory for directory, name in cgroup.delegated}
    assert set(names) == {"memory", "pids", "freezer", "cpuacct"}  # not devices, not cpuset
    for name, directory in names.items():
        assert directory == os.path.join(cgroup.by_controller[name], "delegated")
        assert os.path.isdir(directory)
    assert cgroup.procs_files[0] == os.path.join(cgroup.by_controller["memory"], "cgroup.procs")
    inside = os.path.join(os.path.dirname(_kernel_root(hierarchy)), "inside")  # as the sandbox
    os.mkdir(inside)                                                          # sees them: by name
    for name, directory in names.items():
        os.symlink(directory, os.path.join(inside, name))
    test = delegated_cgroup("test-0", {"SANDBOX_CGROUP": f"v1:{inside}"})
    assert test is not None and set(test.by_controller) == set(names)
    test.make(Limits(memory="64m", pids=8))
    assert _read(os.path.join(names["memory"], "test-0", "memory.limit_in_bytes")) == str(64 * MiB)
    assert _read(os.path.join(names["pids"], "test-0", "pids.max")) == "8"
    cgroup.remove()
    assert hierarchy.leftovers() == []
    hierarchy.remove_parents()


def test_v2_swap_when_asked_and_unlimited_fields_left_alone(v2):
    hierarchy, _ = v2
    cgroup = hierarchy.create("swap1", Limits(memory="64m", memory_swap="32m"))
    assert _read(os.path.join(cgroup.path, "memory.max")) == str(64 * MiB)
    assert _read(os.path.join(cgroup.path, "memory.swap.max")) == str(32 * MiB)
    cgroup.remove()
    cgroup = hierarchy.create("unl1", Limits.unlimited())
    for name, kernel_default in [("memory.max", "max\n"), ("memory.swap.max", "max\n"),
                                 ("pids.max", "max\n"), ("cpu.max", "max 100000\n"),
                                 ("cpuset.cpus", "\n")]:
        assert _read(os.path.join(cgroup.path, name)) == kernel_default, name
    cgroup.remove()


@pytest.mark.parametrize("cpus, expected", [
    (0.25, "25000 100000"), (0.5, "50000 100000"), (1, "100000 100000"), (1.5, "150000 100000"),
    (2, "200000 100000"), (0.01, "1000 100000"),
    # floating point: 0.29 * 100000 == 28999.999999999996; the quota must still be 29000
    (0.29, "29000 100000"), (0.57, "57000 100000"),
])
def test_v2_cpu_max_for_a_cpu_share(v2, cpus, expected):
    hierarchy, _ = v2
    cgroup = hierarchy.create("cpu1", Limits(cpus=cpus))
    try:
        assert _read(os.path.join(cgroup.path, "cpu.max")) == expected
    finally:
        cgroup.remove()


def test_v2_kernel_without_swap_accounting_gets_no_swap_write(v2):
    hierarchy, _kernel = v2
    # the kernel makes memory.swap.max only with swap accounting; without it, nothing to write
    del V2_CONTROLLER_FILES["memory"]["memory.swap.max"]
    try:
        cgroup = hierarchy.create("noswap", Limits(memory="64m"))
    finally:
        V2_CONTROLLER_FILES["memory"]["memory.swap.max"] = "max\n"
    assert _read(os.path.join(cgroup.path, "memory.max")) == str(64 * MiB)
    assert not os.path.exists(os.path.join(cgroup.path, "memory.swap.max"))
    cgroup.remove()


def test_v2_an_existing_delegating_parent_is_reused(v2):
    hierarchy, _kernel = v2
    first = hierarchy.create("one", Limits())
    root_control = os.path.join(hierarchy.root, "cgroup.subtree_control")
    _write(root_control, "cpuset cpu memory pids\n")  # as the kernel shows it
    second = hierarchy.create("two", Limits(pids=10))
    assert _read(root_control) == "cpuset cpu memory pids\n"  # not written again
    assert _read(os.path.join(second.path, "pids.max")) == "10"
    assert sorted(hierarchy.leftovers()) == sorted([first.path, second.path])
    first.remove()
    second.remove()


def test_v2_stats_count_oom_kill_not_oom(v2):
    hierarchy, _ = v2
    cgroup = hierarchy.create("st1", Limits(memory="64m"))
    p = lambda name: os.path.join(cgroup.path, name)  # noqa: E731
    _write(p("memory.events"), "low 0\nhigh 0\nmax 17\noom 3\noom_kill 1\noom_group_kill 0\n")
    _write(p("memory.peak"), "67108864\n")
    _write(p("cpu.stat"), "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
                          "nr_periods 20\nnr_throttled 3\nthrottled_usec 12345\n"
                          "nr_bursts 0\nburst_usec 0\n")
    _write(p("pids.peak"), "7\n")
    _write(p("pids.events"), "max 2\n")
    assert cgroup.stats() == CgroupStats(peak_memory=64 * MiB, memory_current=0, cpu_user=1.0, cpu_system=0.5,
                                         cpu_total=1.5, pids_peak=7, oom_kills=1,
                                         pids_limited=2)
    # reclaim failures that killed nothing are not OOM kills
    _write(p("memory.events"), "low 0\nhigh 0\nmax 40\noom 5\noom_kill 0\noom_group_kill 0\n")
    assert cgroup.stats().oom_kills == 0
    cgroup.remove()


def test_v2_fresh_cgroup_stats_are_zero(v2):
    hierarchy, _ = v2
    cgroup = hierarchy.create("st0", Limits())
    assert cgroup.stats() == CgroupStats(peak_memory=0, memory_current=0, cpu_user=0.0, cpu_system=0.0,
                                         cpu_total=0.0, pids_peak=0, oom_kills=0,
                                         pids_limited=0)
    cgroup.remove()


def test_v2_peak_is_polled_from_memory_current_when_the_kernel_lacks_memory_peak(v2):
    hierarchy, _ = v2
    del V2_CONTROLLER_FILES["memory"]["memory.peak"]  # kernels before 5.19
    try:
        cgroup = hierarchy.create("poll1", Limits(memory="64m"))
    finally:
        V2_CONTROLLER_FILES["memory"]["memory.peak"] = "0\n"
    current = os.path.join(cgroup.path, "memory.current")
    assert not os.path.exists(os.path.join(cgroup.path, "memory.peak"))
    for value in (1 * MiB, 9 * MiB, 3 * MiB):
        _write(current, f"{value}\n")
        cgroup.sample()
    _write(current, "2097152\n")
    assert cgroup.stats().peak_memory == 9 * MiB
    # at the end it reads memory.current once more: a higher last value counts
    _write(current, f"{12 * MiB}\n")
    assert cgroup.stats().peak_memory == 12 * MiB
    cgroup.remove()


def test_v2_kill_uses_cgroup_kill(v2):
    hierarchy, _ = v2
    cgroup = hierarchy.create("k1", Limits())
    cgroup.kill()
    assert _read(os.path.join(cgroup.path, "cgroup.kill")) == "1"
    cgroup.remove()


def test_v2_kill_without_cgroup_kill_freezes_kills_and_thaws(v2):
    """Kernels before 5.14: freeze, SIGKILL every member, thaw (a real process here)."""
    hierarchy, _ = v2
    del V2_CORE["cgroup.kill"]
    try:
        cgroup = hierarchy.create("k2", Limits())
    finally:
        V2_CORE["cgroup.kill"] = ""
    victim = subprocess.Popen(["sleep", "60"])
    try:
        _write(os.path.join(cgroup.path, "cgroup.procs"), f"{victim.pid}\n")
        assert cgroup.pids() == [victim.pid]
        cgroup.kill()
        assert victim.wait(timeout=10) == -signal.SIGKILL
        assert _read(os.path.join(cgroup.path, "cgroup.freeze")) == "0"  # thawed again
    finally:
        victim.kill()
        victim.wait()
    _write(os.path.join(cgroup.path, "cgroup.procs"), "")  # the kernel: the dead leave
    cgroup.remove()


def test_v2_wait_empty_reads_cgroup_events(v2):
    hierarchy, _ = v2
    cgroup = hierarchy.create("e1", Limits())
    assert cgroup.wait_empty(timeout=0.5) is True
    _write(os.path.join(cgroup.path, "cgroup.events"), "populated 1\nfrozen 0\n")
    assert cgroup.wait_empty(timeout=0.05) is False
    _write(os.path.join(cgroup.path, "cgroup.events"), "populated 0\nfrozen 0\n")
    cgroup.remove()


def test_v2_open_finds_a_recorded_cgroup(v2):
    hierarchy, _ = v2
    cgroup = hierarchy.create("o1", Limits(pids=5))
    again = hierarchy.open(list(cgroup.paths))
    _write(os.path.join(cgroup.path, "pids.events"), "max 4\n")
    assert again.stats().pids_limited == 4
    again.remove()
    assert hierarchy.leftovers() == []


def test_v2_remove_of_a_busy_cgroup_is_a_limit_error(v2):
    hierarchy, _ = v2
    cgroup = hierarchy.create("busy", Limits())
    # a process the "kernel" never lets go of (cgroup.kill does nothing in a fake tree)
    _write(os.path.join(cgroup.path, "cgroup.procs"), "999999999\n")
    with pytest.raises(LimitError, match="busy"):
        cgroup.remove(timeout=0.05)
    _write(os.path.join(cgroup.path, "cgroup.procs"), "")
    cgroup.remove()


def test_v2_describe_names_the_available_controllers(v2):
    hierarchy, _ = v2
    assert hierarchy.describe() == "cgroup v2 (cpuset, cpu, io, memory, pids)"
    assert hierarchy.version == 2


def test_v2_root_without_cpu_delegates_only_what_it_has(tmp_path, monkeypatch):
    root = str(tmp_path / "cg")
    os.mkdir(root)
    _write(os.path.join(root, "cgroup.controllers"), "memory pids\n")
    _write(os.path.join(root, "cgroup.subtree_control"), "")
    kernel = FakeCgroupFS(monkeypatch, root, 2)
    hierarchy = CgroupV2(root=root, devices=FakeDeviceFilter())
    cgroup = hierarchy.create("m1", Limits(memory="64m", pids=8))
    assert _enabled(_read(os.path.join(root, "cgroup.subtree_control"))) == {"memory", "pids"}
    assert _read(os.path.join(cgroup.path, "memory.max")) == str(64 * MiB)
    assert kernel.created_by_engine() == {}
    cgroup.remove()


# -- v1 -------------------------------------------------------------------------

V1_SEPARATE = {c: (c,) for c in CgroupV1.CONTROLLERS}


@pytest.fixture
def v1(tmp_path, monkeypatch):
    mounts, hierarchies = {}, {}
    for name, controllers in V1_SEPARATE.items():
        mount = str(tmp_path / "v1" / name)
        os.makedirs(mount)
        hierarchies[mount] = controllers
        for c in controllers:
            mounts[c] = mount
        _write(os.path.join(mount, "cgroup.procs"), "1\n")
        if "cpuset" in controllers:
            _write(os.path.join(mount, "cpuset.cpus"), "0-1\n")
            _write(os.path.join(mount, "cpuset.mems"), "0\n")
        if "devices" in controllers:
            _write(os.path.join(mount, "devices.list"), "a *:* rwm\n")
    kernel = FakeCgroupFS(monkeypatch, str(tmp_path / "v1"), 1, hierarchies)
    yield CgroupV1(mounts), kernel
    assert kernel.created_by_engine() == {}, "the engine wrote files the kernel does not have"


def test_v1_create_writes_exact_limits(v1):
    hierarchy, _ = v1
    cgroup = hierarchy.create("abc", Limits(memory="256m", cpus=0.25, pids=64, cpuset="1"))
    f = lambda c, name: _read(os.path.join(cgroup.by_controller[c], name))  # noqa: E731
    assert set(cgroup.by_controller) == {"memory", "pids", "freezer", "cpuacct", "devices",
                                         "cpu", "cpuset"}
    assert f("memory", "memory.limit_in_bytes") == str(256 * MiB)
    assert f("memory", "memory.memsw.limit_in_bytes") == str(256 * MiB)  # swap off
    assert f("pids", "pids.max") == "64"
    assert f("cpu", "cpu.cfs_period_us") == "100000"
    assert f("cpu", "cpu.cfs_quota_us") == "25000"
    assert f("cpuset", "cpuset.cpus") == "1"
    assert f("cpuset", "cpuset.mems") == "0"  # from the parent, which took the root's
    parent = os.path.dirname(cgroup.by_controller["cpuset"])
    assert (_read(os.path.join(parent, "cpuset.cpus")), _read(os.path.join(parent, "cpuset.mems"))) \
        == ("0-1", "0")
    assert sorted(hierarchy.leftovers()) == sorted(cgroup.paths)
    cgroup.remove()
    assert hierarchy.leftovers() == []
    hierarchy.remove_parents()


def test_v1_no_cpu_or_cpuset_cgroup_unless_asked(v1):
    hierarchy, _ = v1
    cgroup = hierarchy.create("plain", Limits())
    assert set(cgroup.by_controller) == {"memory", "pids", "freezer", "cpuacct", "devices"}
    cgroup.remove()


@pytest.mark.parametrize("cpus, quota", [(0.25, "25000"), (1.5, "150000"), (0.29, "29000")])
def test_v1_cfs_quota_for_a_cpu_share(v1, cpus, quota):
    hierarchy, _ = v1
    cgroup = hierarchy.create("q", Limits(cpus=cpus))
    try:
        assert _read(os.path.join(cgroup.by_controller["cpu"], "cpu.cfs_quota_us")) == quota
    finally:
        cgroup.remove()


def test_v1_swap_when_asked_and_swappiness_without_memsw(v1):
    hierarchy, _ = v1
    cgroup = hierarchy.create("s1", Limits(memory="64m", memory_swap="32m"))
    assert _read(os.path.join(cgroup.by_controller["memory"], "memory.memsw.limit_in_bytes")) \
        == str(96 * MiB)
    cgroup.remove()
    del V1_CONTROLLER_FILES["memory"]["memory.memsw.limit_in_bytes"]  # swapaccount=0
    try:
        cgroup = hierarchy.create("s2", Limits(memory="64m"))
    finally:
        V1_CONTROLLER_FILES["memory"]["memory.memsw.limit_in_bytes"] = "9223372036854771712\n"
    assert _read(os.path.join(cgroup.by_controller["memory"], "memory.swappiness")) == "0"
    cgroup.remove()


def test_v1_device_rules_are_written_on_the_parent_and_inherited(v1):
    hierarchy, _ = v1
    devices_root = hierarchy.mounts["devices"]
    parent = os.path.join(devices_root, PARENT)
    # a parent whose rules are already the container's (as the kernel shows them)
    os.mkdir(parent)
    _write(os.path.join(parent, "devices.list"), "\n".join(DEVICE_RULES) + "\n")
    cgroup = hierarchy.create("d1", Limits())
    assert _read(os.path.join(parent, "devices.deny")) == ""   # left alone
    # no directory of its own: the sandbox joins the parent, and never removes it
    assert cgroup.by_controller["devices"] == parent and parent not in cgroup.paths
    assert os.path.join(parent, "cgroup.procs") in cgroup.procs_files
    assert hierarchy.leftovers() == sorted(cgroup.paths)
    cgroup.remove()
    assert os.path.isdir(parent) and hierarchy.leftovers() == []


def test_v1_devices_co_mounted_with_another_controller_keeps_its_own_directory(tmp_path, monkeypatch):
    base = tmp_path / "v1"
    hierarchies, mounts = {}, {}
    for name, controllers in [("memory", ("memory",)), ("pids", ("pids",)),
                              ("devices,freezer", ("devices", "freezer")), ("cpuacct", ("cpuacct",))]:
        mount = str(base / name)
        os.makedirs(mount)
        hierarchies[mount] = controllers
        mounts.update(dict.fromkeys(controllers, mount))
    _write(os.path.join(mounts["devices"], "devices.list"), "a *:* rwm\n")
    FakeCgroupFS(monkeypatch, str(base), 1, hierarchies)
    cgroup = CgroupV1(mounts).create("cm", Limits())
    assert cgroup.shared == [] and cgroup.by_controller["devices"] == cgroup.by_controller["freezer"]
    assert cgroup.by_controller["devices"] in cgroup.paths
    cgroup.remove()


def test_v1_a_fresh_parent_denies_all_devices_first(v1):
    hierarchy, _ = v1
    cgroup = hierarchy.create("d2", Limits())
    parent = os.path.join(hierarchy.mounts["devices"], PARENT)
    assert _read(os.path.join(parent, "devices.deny")) == "a"
    # a plain file keeps only the last write; the kernel would have added each rule
    assert _read(os.path.join(parent, "devices.allow")) == DEVICE_RULES[-1]
    cgroup.remove()


def test_v1_stats_parse_the_v1_files(v1):
    hierarchy, _ = v1
    cgroup = hierarchy.create("st", Limits(memory="64m"))
    p = lambda c, name: os.path.join(cgroup.by_controller[c], name)  # noqa: E731
    _write(p("memory", "memory.max_usage_in_bytes"), f"{48 * MiB}\n")
    _write(p("memory", "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    _write(p("cpuacct", "cpuacct.usage"), "1500000000\n")
    _write(p("cpuacct", "cpuacct.usage_user"), "1000000000\n")
    _write(p("cpuacct", "cpuacct.usage_sys"), "500000000\n")
    _write(p("pids", "pids.peak"), "12\n")
    _write(p("pids", "pids.events"), "max 3\n")
    assert cgroup.stats() == CgroupStats(peak_memory=48 * MiB, memory_current=0, cpu_user=1.0, cpu_system=0.5,
                                         cpu_total=1.5, pids_peak=12, oom_kills=1,
                                         pids_limited=3)
    cgroup.remove()


def test_v1_open_maps_recorded_paths_back_to_controllers(v1):
    hierarchy, _ = v1
    cgroup = hierarchy.create("op", Limits(cpus=1))
    again = hierarchy.open(list(cgroup.paths))
    assert again.by_controller == cgroup.by_controller
    again.remove()
    assert hierarchy.leftovers() == []


def test_v1_kill_freezes_kills_and_thaws_a_real_process(v1):
    hierarchy, _ = v1
    cgroup = hierarchy.create("kk", Limits())
    victim = subprocess.Popen(["sleep", "60"])
    try:
        _write(os.path.join(cgroup.by_controller["pids"], "cgroup.procs"), f"{victim.pid}\n")
        cgroup.kill()
        assert victim.wait(timeout=10) == -signal.SIGKILL
        assert _read(os.path.join(cgroup.by_controller["freezer"], "freezer.state")) == "THAWED"
    finally:
        victim.kill()
        victim.wait()
    _write(os.path.join(cgroup.by_controller["pids"], "cgroup.procs"), "")
    cgroup.remove()


def test_v1_co_mounted_cpu_and_cpuacct_share_one_directory(tmp_path, monkeypatch):
    base = tmp_path / "v1"
    hierarchies, mounts = {}, {}
    for name, controllers in [("memory", ("memory",)), ("pids", ("pids",)),
                              ("freezer", ("freezer",)), ("devices", ("devices",)),
                              ("cpu,cpuacct", ("cpu", "cpuacct"))]:
        mount = str(base / name)
        os.makedirs(mount)
        hierarchies[mount] = controllers
        mounts.update(dict.fromkeys(controllers, mount))
    _write(os.path.join(mounts["devices"], "devices.list"), "a *:* rwm\n")
    kernel = FakeCgroupFS(monkeypatch, str(base), 1, hierarchies)
    hierarchy = CgroupV1(mounts)
    cgroup = hierarchy.create("co", Limits(cpus=0.5))
    assert cgroup.by_controller["cpu"] == cgroup.by_controller["cpuacct"]
    # one directory per hierarchy but devices, where the sandbox joins the parent
    assert len(cgroup.paths) == 4 and cgroup.shared == [os.path.join(mounts["devices"], PARENT)]
    assert _read(os.path.join(cgroup.by_controller["cpu"], "cpu.cfs_quota_us")) == "50000"
    assert kernel.created_by_engine() == {}
    cgroup.remove()
    assert hierarchy.leftovers() == []


# -- detection ------------------------------------------------------------------

HYBRID = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,favordynmods
"""

V1_SYSTEMD = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
32 25 0:29 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer
33 25 0:30 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,devices
34 25 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,net_cls,net_prio
35 25 0:32 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,cpuset
"""

V2_PURE = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 22 0:6 / /sys/kernel/debug rw,nosuid,nodev,noexec,relatime shared:15 - debugfs debugfs rw
"""

NONE = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
"""


def _mountinfo(tmp_path, text: str) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return str(path)


def test_detect_hybrid_is_v1_with_every_controller(tmp_path):
    hierarchy = detect(_mountinfo(tmp_path, HYBRID))
    assert isinstance(hierarchy, CgroupV1) and hierarchy.version == 1
    assert hierarchy.mounts == {c: f"/sys/fs/cgroup/{c}" for c in CgroupV1.CONTROLLERS}


def test_detect_v1_with_co_mounted_controllers(tmp_path):
    hierarchy = detect(_mountinfo(tmp_path, V1_SYSTEMD))
    assert isinstance(hierarchy, CgroupV1)
    assert hierarchy.mounts["cpu"] == hierarchy.mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert hierarchy.mounts["memory"] == "/sys/fs/cgroup/memory"
    assert "net_cls" not in hierarchy.mounts and "name=systemd" not in hierarchy.mounts


def test_detect_pure_v2(tmp_path):
    hierarchy = detect(_mountinfo(tmp_path, V2_PURE))
    assert isinstance(hierarchy, CgroupV2) and hierarchy.version == 2
    assert hierarchy.root == "/sys/fs/cgroup"


def test_detect_no_cgroups_is_a_host_error_with_the_fix(tmp_path):
    with pytest.raises(HostError) as info:
        detect(_mountinfo(tmp_path, NONE))
    assert "cgroup" in str(info.value) and info.value.hint


def test_detect_this_machine():
    with open("/proc/self/mountinfo") as f:
        text = f.read()
    hierarchy = detect()
    if " - cgroup2 " in text and any(line.split()[4] == "/sys/fs/cgroup"
                                     for line in text.splitlines() if " - cgroup2 " in line):
        assert isinstance(hierarchy, CgroupV2)
    else:
        assert isinstance(hierarchy, CgroupV1)


# -- the parents, shared by every process on the host ----------------------------

def test_v2_parents_stay_while_a_sandbox_holds_them_and_go_when_none_does(v2):
    hierarchy, _ = v2
    parent = os.path.join(hierarchy.root, PARENT)
    cgroup = hierarchy.plan("held", Limits())
    other_process = CgroupV2(root=hierarchy.root, devices=hierarchy.devices)  # its own lock: as another process's
    other_process.remove_parents()
    assert os.path.isdir(parent)  # planned, not yet made: the parent must not go
    cgroup.make(Limits())
    cgroup.remove()  # releases the parents
    other_process.remove_parents()
    assert not os.path.exists(parent)
    again = other_process.create("again", Limits(pids=5))  # made afresh, delegated again
    assert _enabled(_read(os.path.join(parent, "cgroup.subtree_control"))) == \
        {"memory", "pids", "cpu", "cpuset"}
    again.remove()
    other_process.remove_parents()


def test_v2_a_plan_while_another_cgroup_is_live_shares_its_lock_and_the_parents_stay(v2):
    """The second plan copies the live one's lock instead of locking and checking the
    parents again; the parents stay until the last of the two is removed."""
    hierarchy, _ = v2
    parent = os.path.join(hierarchy.root, PARENT)
    first = hierarchy.plan("first", Limits())
    ready_checks = []
    real_ready = hierarchy._parents_ready
    hierarchy._parents_ready = lambda: ready_checks.append(1) or real_ready()
    second = hierarchy.plan("second", Limits())
    assert ready_checks == []  # the parents were not looked at again
    assert os.fstat(second.parents_lock).st_ino == os.fstat(first.parents_lock).st_ino
    other_process = CgroupV2(root=hierarchy.root, devices=hierarchy.devices)
    for cgroup in (first, second):
        cgroup.make(Limits())
    first.remove()
    other_process.remove_parents()
    assert os.path.isdir(parent)  # the second still holds the lock
    second.remove()
    third = hierarchy.plan("third", Limits())  # none live: locked and checked afresh
    assert ready_checks == [1]
    third.release_parents()
    other_process.remove_parents()
    assert not os.path.exists(parent)


def test_v2_a_plan_that_waited_while_the_parents_were_removed_makes_them_again(v2):
    import fcntl
    import threading

    hierarchy, _ = v2
    parent = os.path.join(hierarchy.root, PARENT)
    hierarchy.create("first", Limits()).remove()
    remover = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(remover, fcntl.LOCK_EX)  # as remove_parents holds it
    planned = []
    waiting = threading.Thread(target=lambda: planned.append(hierarchy.plan("late", Limits())))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()  # it waits for the remover
    os.rmdir(parent)
    os.close(remover)
    waiting.join(10)
    cgroup = planned[0]
    assert os.path.isdir(parent) and cgroup.paths == [os.path.join(parent, "late")]
    cgroup.make(Limits())
    cgroup.remove()
    hierarchy.remove_parents()
