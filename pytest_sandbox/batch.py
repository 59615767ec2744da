"""The pytest a batch job runs on a worker: collects once, runs each test in namespaces of its own.

The job queue's workers run it for ``--sandbox-redis`` (``where.remote``,
``where.queue_job``): ``python3 -m pytest -p no:sandbox -p pytest_sandbox.batch``
with the session's own arguments (as the slow path's inner pytest has them)
and ``--sandbox-batch=LIST`` (the batch's node ids), in the job's sandbox.

It collects those tests once. Then, for each, in order, a copy of itself in
namespaces nested in the job's sandbox (``sandbox.fork_nested``: its own
user, mount, pid, network, IPC and UTS namespaces, a fresh /tmp, and a root
filesystem of its own, overlays of the sandbox's writable mounts, where the
kernel can make one: ``own_root``, its reports' directory bound through), and in a
cgroup of its own with the test's limits (``--sandbox-batch-limits``; made in
the subtree the job's sandbox is delegated, ``sandbox.delegated_cgroup``, and
removed after the test, whatever is left in it killed), forks the test's
process, which runs the test's protocol as a forked test does on the
session's host (``inside.run_item``: every plugin's part, the reports to a
directory of its own); this process waits for it, ending its namespaces at
the test's time limit (``--sandbox-batch-timeout``), and writes one line for
it on its stdout (``FRAME``, JSON): the test's events, how its process ended
and what its cgroup counted (an OOM kill, peak memory, processes, CPU), its
uncaptured output. The job's log carries each line to the session as soon
as the test has ended. pytest's own output goes to stderr.

Before each test it reads the job's inbox (``jobs.INBOX``, in the
workspace): a line ``steal N`` (the session gave the tests from the N-th on
to another worker) ends the batch there, with a line saying where.

Under Docker's default seccomp profile (which refuses user namespaces) the
batch's sandbox runs under the ``nested`` profile instead (the default plus
exactly the namespaces and mounts of ``fork_nested``), and is given
``--sandbox-batch-seccomp=default``: each copy, once settled, gets back this
process's capabilities and stacks the default filter on the sandbox's, so a
test's code is confined as an ordinary sandbox's command is (it cannot make
namespaces of its own).

Where the sandbox may not make user namespaces, each test runs in a plain
copy of this process instead (its own process group, /tmp shared), said in
its line (``nested: false``); it stacks the same filter.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import select
import signal
import tempfile
import time

import pytest

from sandbox import NESTED_ROOT_ENV as ROOT_ENV
from sandbox import Limits, delegated_cgroup, fork_confined, fork_nested

from . import hookspecs, inside
from .events import EVENTS_FILE
from .inner import item_path, not_outer
from .options import MARKER_HELP, add_options

#: What starts each line this process writes for the session.
FRAME = "#pytest-sandbox-batch "
#: Where each test's reports go, under the workspace (made fresh by the job's step).
REPORTS = "/workspace/.pytest-sandbox-reports"
#: The job's inbox in the workspace: lines the session sent while the job runs.
INBOX = "/workspace/.sandbox-inbox"
#: Uncaptured output kept per test and stream.
OUTPUT_CAP = 1 << 20

_FRAMES: list[int] = []  # the fd of the job's stdout, kept for the lines


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser) -> None:
    """The options; and, before pytest's capture starts, stdout kept for the lines alone."""
    add_options(parser)
    parser.addoption("--sandbox-batch", dest="sandbox_batch", help=argparse.SUPPRESS)
    parser.addoption("--sandbox-batch-timeout", dest="sandbox_batch_timeout", type=float,
                     help=argparse.SUPPRESS)
    parser.addoption("--sandbox-batch-seccomp", dest="sandbox_batch_seccomp", help=argparse.SUPPRESS)
    parser.addoption("--sandbox-batch-limits", dest="sandbox_batch_limits", help=argparse.SUPPRESS)
    if not _FRAMES:
        _FRAMES.append(os.dup(1))
        os.dup2(2, 1)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_cmdline_main(config):
    """Before any plugin acts on its options: turn off what only the outer session does."""
    not_outer(config)
    config.option.basetemp = None  # the session's is on its host: one under each test's /tmp
    return (yield)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.args = [item_path(config, nodeid) for nodeid in node_ids(config)]


def node_ids(config) -> list[str]:
    """The batch's node ids, in order (``--sandbox-batch``: base64 of a JSON list)."""
    value = config.getoption("sandbox_batch") or ""
    return json.loads(base64.b64decode(value)) if value else []


def encode_node_ids(nodeids: list[str]) -> str:
    return base64.b64encode(json.dumps(nodeids).encode()).decode()


#: The limits each test's cgroup gets (``--sandbox-batch-limits``, JSON).
TEST_LIMITS = ("memory", "memory_swap", "pids", "cpus")


def encode_limits(limits: Limits) -> str:
    return json.dumps({name: getattr(limits, name) for name in TEST_LIMITS})


def each_tests_limits(config) -> Limits:
    """Each test's limits (unlimited where the option does not say)."""
    given = json.loads(config.getoption("sandbox_batch_limits") or "{}")
    return Limits(**{name: given.get(name) for name in TEST_LIMITS})


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session) -> bool:
    """Run each of the batch's tests in its own namespaces, in the batch's order."""
    config = session.config
    recorder = inside.register_recorder(config, REPORTS)
    inside.prepare(config)
    found: dict = {}
    for item in session.items:
        found.setdefault(item.nodeid, item)
    wanted = node_ids(config)
    timeout = config.getoption("sandbox_batch_timeout")
    seccomp = config.getoption("sandbox_batch_seccomp")
    limits = each_tests_limits(config)
    for index, nodeid in enumerate(wanted):
        stolen = _stolen_from()
        if stolen is not None and index >= stolen:
            _emit({"stolen_from": index})
            break
        item = found.get(nodeid)
        if item is None:
            _emit({"index": index, "nodeid": nodeid, "missing": True})
            continue
        after = found.get(wanted[index + 1]) if index + 1 < len(wanted) else None
        _emit(_run_one(item, after, index, recorder, timeout, seccomp, limits))
    return True


def _stolen_from() -> int | None:
    """The first test the session gave to another worker, if it did (the last request)."""
    try:
        with open(INBOX, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    steals = [int(line.split()[1]) for line in lines
              if line.startswith("steal ") and line.split()[1:2] and line.split()[1].isdigit()]
    return min(steals) if steals else None


def _emit(frame: dict) -> None:
    data = (FRAME + json.dumps(frame) + "\n").encode()
    while data:
        data = data[os.write(_FRAMES[0], data):]


def _run_one(item, nextitem, index: int, recorder, timeout: float | None,
             seccomp: str | None, limits: Limits) -> dict:
    """Run one test in a copy of this process in namespaces of its own (stacking the
    filter of profile ``seccomp``, if given), on a root filesystem of its own where the
    kernel can make one, and, where the job's sandbox has a delegated cgroup subtree,
    in a cgroup of its own with ``limits``; its line."""
    directory = os.path.join(REPORTS, str(index))
    os.makedirs(directory, exist_ok=True)
    recorder.path = os.path.join(directory, EVENTS_FILE)  # the copy writes there
    cgroup = delegated_cgroup(f"test-{index}")
    if cgroup is not None:
        cgroup.make(limits)
    # opened here, by this process: moving a process takes write access the copy's
    # namespaces do not give it (and on cgroup v2, seeing both cgroups from the opener's)
    join = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in cgroup.procs_files] if cgroup else []
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            status_r, status_w = os.pipe()
            started = time.time()
            nested = True
            try:
                pid = fork_nested(seccomp, own_root=True, keep=(directory,))
            except OSError:
                nested = False
                pid = fork_confined(seccomp) if seccomp else os.fork()
            if pid == 0:
                _copy(item, nextitem, out.fileno(), err.fileno(), status_w, nested, join)
            for fd in join:
                os.close(fd)
            join = []
            os.close(status_w)
            status, root, timed_out = _wait(pid, status_r, timeout, nested)
            ended = time.time()
            frame = {"index": index, "nodeid": item.nodeid, "events": _read(recorder.path),
                     "status": status, "timed_out": timed_out, "started": started, "ended": ended,
                     "stdout": _head(out), "stderr": _head(err), "nested": nested,
                     "cgroup": cgroup is not None, "root": root}
    finally:
        for fd in join:
            os.close(fd)
        usage = _end(cgroup)
    frame.update(usage)
    return frame


def _end(cgroup) -> dict:
    """What the test's cgroup counted (for its Result), then the cgroup removed, whatever
    the test left running in it killed first; nothing without a cgroup."""
    if cgroup is None:
        return {}
    try:
        stats = cgroup.stats()
    finally:
        cgroup.remove()
    return {"oom_killed": stats.oom_kills > 0, "peak_memory": stats.peak_memory,
            "pids_peak": stats.pids_peak, "pids_limited": stats.pids_limited > 0,
            "cpu_user": stats.cpu_user, "cpu_system": stats.cpu_system}


def _copy(item, nextitem, out: int, err: int, status_w: int, nested: bool, join: list[int]):
    """In the copy (pid 1 of its pid namespace when nested): join the test's cgroup (``join``:
    its cgroup.procs files, open), fork the test's process, wait for it, say how it
    ended. Never returns."""
    try:
        gc.disable()  # a collection would touch, and so copy, the whole heap
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if not nested:
            os.setpgid(0, 0)  # ended as a group at its time limit
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        _join(join)
        test = os.fork()
        if test == 0:
            os.close(status_w)
            _first_to_go()
            code = 1
            try:
                code = inside.run_item(item, nextitem)
            finally:
                os._exit(code)
        status = _reap_until(test)
        os.write(status_w, f"{status}\n{os.environ.get(ROOT_ENV, 'shared')}".encode())
    finally:
        os._exit(0)


def _join(procs_fds: list[int]) -> None:
    """Join the test's cgroup, or end the copy saying why on its stderr (exit 125: the
    test fails with it, as any copy that ends before its test reports)."""
    try:
        for fd in procs_fds:
            os.write(fd, b"0")
            os.close(fd)
    except OSError as exc:
        os.write(2, f"sandbox: cannot join the test's cgroup: {exc}\n".encode())
        os._exit(125)


def _first_to_go() -> None:
    """The batch's memory limit covers all its processes: over it, the kernel ends the
    test's process (the one that asked) rather than the batch's pytest, which reports it."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass  # the kernel picks by size alone: the test's process, in most cases


def _reap_until(pid: int) -> int:
    """Reap every child (as a pid 1 does) until ``pid`` ends; its wait status."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if done == pid:
            return status


def _wait(pid: int, status_r: int, timeout: float | None,
          nested: bool) -> tuple[int | None, str | None, bool]:
    """The test process's wait status (None if its copy died first), whose root it had
    (``fork_nested``'s ROOT_ENV: "own", "shared: why"; None if unsaid) and whether its
    time limit ended it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if select.select([status_r], [], [], left)[0]:
            break
        timed_out = True
        _kill(pid, nested)
        break
    data = b""
    while chunk := os.read(status_r, 64):
        data += chunk
    os.close(status_r)
    _, own = os.waitpid(pid, 0)
    if data:
        status, _, root = data.decode().partition("\n")
        return int(status), root, timed_out
    return (None if own == 0 else own), None, timed_out


def _kill(pid: int, nested: bool) -> None:
    try:
        if nested:
            os.kill(pid, signal.SIGKILL)  # pid 1 of the test's pid namespace: all of it ends
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _head(file) -> str:
    file.seek(0)
    return base64.b64encode(file.read(OUTPUT_CAP)).decode()
