"""What @pytest.mark.sandbox costs per test: 200 trivial tests plain vs all marked, one run.

    python3 bench/pytest_overhead.py [N] [-- extra pytest args, e.g. -n 2 or --sandbox-no-fork]

Runs one pytest session (as root) over N plain and N marked trivial tests,
and times each test from pytest_runtest_logstart to
pytest_runtest_logfinish. Prints the medians, the overhead per sandboxed
test against the target (under 15 ms), both as the median of the per-test
times and over the whole run of marked tests (a prepared test starts before
its logstart, so the per-test times leave part of it out: the whole-run
figure is the stricter one), the CPU one marked test costs by whom
(pytest itself, the tests' processes, the zygote with the containers it
reaped, the fork server, the whole machine) and the page faults (each a
copied or first-touched page, microseconds apiece on small VMs), from the
first marked test's start to the last's end, and how busy the machine's CPUs
were meanwhile (near 100%: the wall time follows the CPU). State lives in a
private temp root.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGET_MS = 15.0
TESTS = '''
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_plain(i):
    assert i >= 0

@pytest.mark.sandbox
@pytest.mark.parametrize("i", range({n}))
def test_marked(i):
    assert i >= 0
'''
TIMER = '''
import json, os, resource, time
_start = {}
_times = {}  # nodeid: seconds; "span:FUNCTION": [first logfinish, last logfinish]
_cpu = {}  # "first"/"last": CPU seconds by whom, at the first marked logstart and last logfinish
_faults = {}  # the same for minor page faults

def pytest_runtest_logstart(nodeid):
    if "test_marked" in nodeid and "first" not in _cpu:
        _cpu["first"], _faults["first"] = _cpu_now(), _faults_now()
    _start[nodeid] = time.perf_counter()

def pytest_runtest_logfinish(nodeid):
    now = time.perf_counter()
    _times[nodeid] = now - _start.pop(nodeid)
    _times.setdefault("span:" + nodeid.split("[")[0], [now, now])[1] = now
    if "test_marked" in nodeid:
        _cpu["last"], _faults["last"] = _cpu_now(), _faults_now()

def pytest_sessionfinish(session):
    if _times:
        with open(os.environ["BENCH_OUT"], "a") as f:
            f.write(json.dumps({**_times, "cpu": _cpu, "faults": _faults}) + "\\n")

def _cpu_now():
    from proc_cpu import children_named, cpu_seconds, machine_busy_seconds  # bench/, on PYTHONPATH

    me = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # the marked tests' processes
    return {"pytest": me.ru_utime + me.ru_stime, "test processes": reaped.ru_utime + reaped.ru_stime,
            # alive until the end: the zygote with the spares and inits it reaped
            "zygote+containers": _alive(cpu_seconds, children_named("sandbox-zygote"), True),
            # the fork server (its targets are pytest's children, counted above)
            "fork server": _alive(cpu_seconds, children_named("sandbox-forker"), False),
            "whole machine": machine_busy_seconds()}

def _faults_now():
    from proc_cpu import children_named, page_faults

    return {"pytest": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
            "test processes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt,
            "zygote+containers": _alive(page_faults, children_named("sandbox-zygote"), True),
            "fork server": _alive(page_faults, children_named("sandbox-forker"), False)}

def _alive(read, pids, children):
    """read(pid, children=...) summed over the processes still there."""
    total = 0
    for pid in pids:
        try:
            total += read(pid, children=children)
        except OSError:
            pass
    return total
'''


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = argv[:argv.index("--")] if "--" in argv else argv
    n = int(args[0]) if args else 200
    root = tempfile.mkdtemp(prefix="bench-pytest-")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, SANDBOX_STATE_DIR=f"{root}/lib", SANDBOX_RUN_DIR=f"{root}/run",
               SANDBOX_CGROUP_PARENT=f"sandbox-bench-{os.getpid()}", BENCH_OUT=f"{root}/times",
               PYTHONPATH=os.pathsep.join(filter(None, [repo, os.path.join(repo, "bench"),
                                                        os.environ.get("PYTHONPATH")])))
    try:
        suite = os.path.join(root, "suite")
        os.mkdir(suite)
        with open(os.path.join(suite, "test_trivial.py"), "w") as f:
            f.write(TESTS.format(n=n))
        with open(os.path.join(suite, "conftest.py"), "w") as f:
            f.write(TIMER)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, suite]
        proc = subprocess.run(cmd, env=env, cwd=suite, capture_output=True, text=True)
        print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr)
        times: dict[str, float] = {}
        with open(env["BENCH_OUT"]) as f:
            for line in f:
                times.update(json.loads(line))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        _remove_cgroups(env["SANDBOX_CGROUP_PARENT"])
    return report(times, n)


def report(times: dict[str, float], n: int) -> int:
    cpu = times.pop("cpu", {})
    faults = times.pop("faults", {})
    plain = [t for k, t in times.items() if "test_plain" in k and not k.startswith("span:")]
    marked = [t for k, t in times.items() if "test_marked" in k and not k.startswith("span:")]
    if len(marked) != n or len(plain) != n:
        print(f"expected {n} + {n} timings, got {len(plain)} + {len(marked)}")
        return 1
    p, m = statistics.median(plain) * 1000, statistics.median(marked) * 1000
    q = statistics.quantiles([t * 1000 for t in marked], n=10)
    print(f"plain   median {p:7.2f} ms per test")
    print(f"marked  median {m:7.2f} ms per test (p10 {q[0]:.2f}, p90 {q[-1]:.2f})")
    span = [v for k, v in times.items() if k.startswith("span:") and "test_marked" in k]
    whole = None
    if span and n > 1:
        first, last = span[0]
        whole = (last - first) * 1000 / (n - 1)
        print(f"marked  whole run {whole:7.2f} ms per test "
              f"(first to last logfinish / {n - 1}, gaps between tests included)")
    if "first" in cpu and "last" in cpu:
        spent = {who: (cpu["last"][who] - cpu["first"][who]) * 1000 / n for who in cpu["last"]}
        print("CPU ms per marked test: " + ", ".join(f"{who} {ms:.1f}" for who, ms in spent.items()))
        if whole is not None and "whole machine" in spent:
            # on a machine whose CPUs are all busy, the wall time follows the CPU
            busy = spent["whole machine"] / ((os.cpu_count() or 1) * whole) * 100
            print(f"machine busy {busy:.0f}% of {os.cpu_count()} CPUs over the marked tests")
    if "first" in faults and "last" in faults:
        counts = {who: (faults["last"][who] - faults["first"][who]) / n for who in faults["last"]}
        print("page faults per marked test: " + ", ".join(f"{who} {c:.0f}" for who, c in counts.items()))
    verdict = "meets" if m - p < TARGET_MS else "misses"
    print(f"overhead median {m - p:7.2f} ms per sandboxed test ({m / p:.0f}x plain); "
          f"{verdict} the {TARGET_MS:.0f} ms target")
    if whole is not None:
        # a prepared test starts before its logstart: the per-test times leave that part out,
        # the whole run does not
        verdict = "meets" if whole - p < TARGET_MS else "misses"
        print(f"overhead over the whole run {whole - p:7.2f} ms per sandboxed test "
              f"(whole run - plain median); {verdict} the {TARGET_MS:.0f} ms target")
    return 0


def _remove_cgroups(parent: str) -> None:
    """The engine removes its (empty) cgroup parent; as the test suite does."""
    os.environ["SANDBOX_CGROUP_PARENT"] = parent
    try:
        from sandbox.cgroups import host_cgroups

        host_cgroups().remove_parents()
    except Exception as exc:
        print(f"could not remove cgroup parent {parent}: {exc}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
