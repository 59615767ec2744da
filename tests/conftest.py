"""Suite-wide fixtures: an isolated state root, honest skips, and the leak check.

- Every test runs with SANDBOX_STATE_DIR / SANDBOX_RUN_DIR under one session
  temp dir, so the suite never touches a real installation.
- ``needs_root`` skips with the reason on a machine that cannot run containers;
  with SANDBOX_MUST_WORK=1 (set by .ci/run) every skip is turned into a failure.
- The autouse ``leak_check`` fixture snapshots what a sandbox could leave
  behind (mounts, cgroups, state dirs, sandbox processes, supervisors, ptys
  held here, network links, named netns, uid range leases) before each test and fails
  the test if anything new remains.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

MUST_WORK = os.environ.get("SANDBOX_MUST_WORK") == "1"

if __name__ != "tests.conftest":  # imported twice, it would move the session's state root
    raise ImportError("import the suite's conftest as tests.conftest (from .conftest import ...)")

_SESSION_ROOT = tempfile.mkdtemp(prefix="sandbox-tests-")
# live state on tmpfs where there is one, as /run is on most hosts
_RUN_ROOT = tempfile.mkdtemp(prefix="sandbox-tests-run-",
                             dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
os.environ["SANDBOX_STATE_DIR"] = os.path.join(_SESSION_ROOT, "lib")
os.environ["SANDBOX_RUN_DIR"] = _RUN_ROOT
# a cgroup parent of our own, so suites running side by side never see each other's
# (SANDBOX_TEST_TAG: set by scripts/test-isolated, whose runs share cgroups but not pids)
_TAG = f"{os.getpid()}{os.environ.get('SANDBOX_TEST_TAG', '')}"
os.environ["SANDBOX_CGROUP_PARENT"] = f"sandbox-test-{_TAG}"
CGROUP_PARENT = os.environ["SANDBOX_CGROUP_PARENT"]
# a default bridge of our own too (its subnet is chosen to clash with no other)
os.environ["SANDBOX_BRIDGE"] = f"sbxt{os.getpid()}"[:15]
os.environ.pop("SANDBOX_BRIDGE_SUBNET", None)


def pytest_sessionfinish(session, exitstatus):
    try:
        from sandbox.network import remove_network

        remove_network("bridge")
    except Exception:
        pass
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)
    shutil.rmtree(_RUN_ROOT, ignore_errors=True)
    try:
        from sandbox.cgroups import host_cgroups

        host_cgroups().remove_parents()
    except Exception:
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With SANDBOX_MUST_WORK=1 a skip is a failure: CI cannot go green by skipping."""
    outcome = yield
    report = outcome.get_result()
    if MUST_WORK and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but SANDBOX_MUST_WORK=1 forbids skips: {reason}"


def _can_make_containers() -> str | None:
    """None if this machine can run sandboxes, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        from sandbox.cgroups import detect

        detect()
    except Exception as exc:
        return f"no usable cgroups: {exc}"
    if not shutil.which("busybox") and not os.path.exists("/bin/busybox"):
        return "needs busybox-static (apt-get install busybox-static)"
    return None


_REASON = _can_make_containers()


@pytest.fixture(params=["direct", "zygote"])
def spawn_mode(request, monkeypatch):
    """Run the test once with containers forked by this process, once through the zygote.

    The engine forks the first container of a process itself and later ones
    through its zygote (SANDBOX_SPAWN=auto), so a session would otherwise
    test one path almost only.
    """
    monkeypatch.setenv("SANDBOX_SPAWN", request.param)
    return request.param


@pytest.fixture
def needs_root():
    if _REASON:
        pytest.skip(_REASON)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("root") and _REASON:
            item.add_marker(pytest.mark.skip(reason=_REASON))


# -- the leak check -----------------------------------------------------------

#: iproute2's own: the first `ip netns add` since boot binds /run/netns onto itself, shared,
#: and it stays for every later one (the named namespaces in it are checked on their own).
IP_NETNS_DIR = "/run/netns /run/netns"


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {" ".join(line.split()[3:5]) for line in f} - {IP_NETNS_DIR}


def _cgroups() -> set[str]:
    try:
        from sandbox.cgroups import host_cgroups

        return set(host_cgroups().leftovers())
    except Exception:
        return set()


def _state_dirs() -> set[str]:
    path = os.path.join(os.environ["SANDBOX_RUN_DIR"], "sandboxes")
    try:
        return set(os.listdir(path))
    except FileNotFoundError:
        return set()


def _processes_named(name: str):
    """The pids of the processes whose name (comm) is ``name``."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == name:
                        yield int(pid)
            except OSError:
                continue


def _sandbox_processes() -> set[int]:
    found = set()
    for pid in _processes_named("sandbox-init"):
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if f"/{CGROUP_PARENT}/" in f.read():
                    found.add(pid)
        except OSError:
            continue
    return found


def _fork_servers() -> set[int]:
    """Fork servers (sandbox.process.forkserver) still running, of this suite or not."""
    return set(_processes_named("sandbox-forker"))


def _supervisors() -> set[int]:
    """Supervisors of sandboxes (sandbox.supervisor) and processes started in sandboxes by
    `sandbox exec` (their first process, outside the sandbox's pid namespace)."""
    return set(_processes_named("sandbox-supervi")) | set(_processes_named("sandbox-exec"))


def _terminals() -> set[str]:
    """Terminals this process holds beyond its stdio: a pty's master (or peer) that a
    sandbox, an exec or a spawned program left open here."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if int(name) > 2 and os.isatty(int(name)):
                found.add(f"fd {name} {os.readlink(f'/proc/self/fd/{name}')}")
        except OSError:
            continue  # closed meanwhile (the listing's own fd)
    return found


def _links() -> set[str]:
    try:
        return {name for name in os.listdir("/sys/class/net")
                if name.startswith(("sbx", "veth-sb", "vsb"))}
    except FileNotFoundError:
        return set()


def _named_netns() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def _temp_dirs() -> set[str]:
    """Our temp and work dirs: under $TMPDIR and /dev/shm, and in the state root's work areas."""
    found = set()
    for tmp in {tempfile.gettempdir(), "/dev/shm"}:  # report channels go to /dev/shm
        if not os.path.isdir(tmp):
            continue
        for name in os.listdir(tmp):
            if name.startswith(("pytest-sandbox-", "pytest-basetemp-")):
                found.add(os.path.join(tmp, name))
    images = os.path.join(os.environ["SANDBOX_STATE_DIR"], "images")  # half-made images
    work = os.path.join(images, "tmp")  # the store's work dirs (imports, builds, commits)
    jobs = os.path.join(os.environ["SANDBOX_RUN_DIR"], "jobs")  # job workspaces
    for path, hidden_only in ((images, True), (work, False), (jobs, False)):
        if os.path.isdir(path):
            found |= {os.path.join(path, n) for n in os.listdir(path)
                      if n.startswith(".") or not hidden_only}
    return found


def _uid_ranges() -> set[str]:
    """Leases of host uid ranges (userns=auto): one per live sandbox in a user namespace."""
    path = os.path.join(os.environ["SANDBOX_RUN_DIR"], "userns")
    try:
        return set(os.listdir(path))
    except FileNotFoundError:
        return set()


def _class_dirs() -> set[str]:
    """What the daemon's classes keep on disk (server.classes): gone with each class."""
    path = os.path.join(os.environ["SANDBOX_STATE_DIR"], "classes")
    try:
        return set(os.listdir(path))
    except FileNotFoundError:
        return set()


SNAPSHOTS = {
    "mounts": _mounts, "classes": _class_dirs, "cgroups": _cgroups, "state dirs": _state_dirs,
    "sandbox processes": _sandbox_processes, "fork servers": _fork_servers,
    "supervisors and execs": _supervisors, "terminals": _terminals,
    "network links": _links, "named netns": _named_netns,
    "temp dirs": _temp_dirs, "uid ranges": _uid_ranges,
}


def snapshot() -> dict[str, set]:
    return {name: take() for name, take in SNAPSHOTS.items()}


def leaks_since(before: dict[str, set], settle: float = 2.0) -> dict[str, set]:
    """What is new since ``before``; waits briefly for the kernel to finish dying tasks."""
    deadline = time.monotonic() + settle
    while True:
        after = snapshot()
        new = {k: after[k] - before[k] for k in after if after[k] - before[k]}
        # bridges made on purpose (sbx0 and named networks) stay until removed
        new.pop("network links", None) if not new.get("network links", set()) - _persistent_links() else None
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.05)


def _persistent_links() -> set[str]:
    try:
        from sandbox.network import persistent_links

        return set(persistent_links())
    except Exception:
        return set()


@pytest.fixture(autouse=True)
def leak_check(request):
    if request.node.get_closest_marker("no_leak_check"):
        yield
        return
    before = snapshot()
    yield
    leaks = leaks_since(before)
    if leaks:
        pytest.fail(f"the test left things behind: {leaks}", pytrace=False)
