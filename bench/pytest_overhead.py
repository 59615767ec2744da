"""What @pytest.mark.sandbox costs per test: 200 trivial tests plain vs all marked, one run.

    python3 bench/pytest_overhead.py [N] [--xdist W | --concurrent K | --redis URL] [-- extra pytest args]

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

``--xdist W`` runs the session twice, alternating: as above, then with
pytest-xdist's ``-n W``, where each worker's single-threaded twin forks the
marked tests. Per-test times are the workers' own; the overhead under xdist
(marked median minus plain median, both under ``-n W``) is printed beside
the one without xdist, with their ratio (target: under 2x), and the CPU
and page faults per marked test by whom (the workers, their twins, the
tests' processes the twins reaped, zygotes, fork servers). The first
marked test of each worker also waits for its twin to start: its time is
printed on its own, and left out of the medians by the medians themselves.

``--concurrent K`` runs the session alone, then K copies of it at once, each
without xdist (its own engine state, its own fast path): what an xdist that
cost nothing would give on this machine, the floor under the ``--xdist K``
ratio. It prints the overhead per marked test of the K sessions together
beside the one alone, and their ratio.

``--redis URL`` sends the marked tests through the job queue at URL instead
(``--sandbox-redis``), to two ``sandbox worker`` processes the benchmark
starts on a queue of its own (``--workers K`` for another count): the
marked tests' overhead is then over the whole run (first marked start to
last marked end, per test), beside the local one.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGET_MS = 15.0
#: Under xdist, the overhead per marked test should stay under this multiple of the one without.
XDIST_TARGET = 2.0
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
_times = {}  # nodeid: seconds; "span:FUNCTION": [first logstart, first logfinish, last logfinish, tests]
_cpu = {}  # "first"/"after_first"/"last": CPU seconds by whom, at the first marked logstart,
#          first marked logfinish and last marked logfinish
_faults = {}  # the same for minor page faults
_RECORDS = []  # this process records: the session's, a worker's; not xdist's controller, a twin

def pytest_configure(config):
    twin = config.pluginmanager.has_plugin("pytest_sandbox.twin")
    controller = bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")
    if not twin and not controller:
        _RECORDS.append(os.environ.get("PYTEST_XDIST_WORKER", "-"))

def pytest_runtest_logstart(nodeid):
    if not _RECORDS:
        return
    if "test_marked" in nodeid and "first" not in _cpu:
        _cpu["first"], _faults["first"] = _cpu_now(), _faults_now()
    _start[nodeid] = time.perf_counter()
    _times.setdefault("span:" + nodeid.split("[")[0], [_start[nodeid], None, None, 0])

def pytest_runtest_logfinish(nodeid):
    if not _RECORDS or nodeid not in _start:
        return
    now = time.perf_counter()
    _times[nodeid] = now - _start.pop(nodeid)
    span = _times["span:" + nodeid.split("[")[0]]
    span[1] = span[1] or now
    span[2] = now
    span[3] += 1
    if "test_marked" in nodeid:
        _cpu["last"], _faults["last"] = _cpu_now(), _faults_now()
        _cpu.setdefault("after_first", _cpu["last"])
        _faults.setdefault("after_first", _faults["last"])

def pytest_sessionfinish(session):
    if _times and _RECORDS:
        with open(os.environ["BENCH_OUT"], "a") as f:
            f.write(json.dumps({"worker": _RECORDS[0], "times": _times, "cpu": _cpu,
                                "faults": _faults}) + "\\n")

def _cpu_now():
    from proc_cpu import children_named, cpu_seconds, machine_busy_seconds, twins  # bench/

    me = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # the marked tests' processes
    found = {"pytest": me.ru_utime + me.ru_stime,
             "test processes": reaped.ru_utime + reaped.ru_stime}
    # a session that cannot fork (an xdist worker) has a twin fork the tests: its children
    for parent in (["self"] + twins()):
        if parent != "self":
            found["twin"] = found.get("twin", 0) + _alive(cpu_seconds, [parent], False)
            found["test processes"] += _reaped(cpu_seconds, parent)
        # alive until the end: the zygote with the spares and inits it reaped
        found["zygote+containers"] = found.get("zygote+containers", 0) + _alive(
            cpu_seconds, children_named("sandbox-zygote", parent), True)
        # the fork server (its targets are its owner's children, counted above)
        found["fork server"] = found.get("fork server", 0) + _alive(
            cpu_seconds, children_named("sandbox-forker", parent), False)
    found["whole machine"] = machine_busy_seconds()
    return found

def _faults_now():
    from proc_cpu import children_named, page_faults, twins

    found = {"pytest": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
             "test processes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt}
    for parent in (["self"] + twins()):
        if parent != "self":
            found["twin"] = found.get("twin", 0) + _alive(page_faults, [parent], False)
            found["test processes"] += _reaped(page_faults, parent)
        found["zygote+containers"] = found.get("zygote+containers", 0) + _alive(
            page_faults, children_named("sandbox-zygote", parent), True)
        found["fork server"] = found.get("fork server", 0) + _alive(
            page_faults, children_named("sandbox-forker", parent), False)
    return found

def _reaped(read, pid):
    """What ``pid``'s reaped children cost (with them minus without)."""
    try:
        return read(pid, children=True) - read(pid, children=False)
    except OSError:
        return 0

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


def session(n: int, extra: list[str], env_extra: dict[str, str] | None = None,
            tag: str = "") -> list[dict]:
    """One pytest session over the suite: the records its processes wrote (one per worker);
    ``tag`` tells apart sessions that run at once (their cgroup parents)."""
    root = tempfile.mkdtemp(prefix="bench-pytest-")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, SANDBOX_STATE_DIR=f"{root}/lib", SANDBOX_RUN_DIR=f"{root}/run",
               SANDBOX_CGROUP_PARENT=f"sandbox-bench-{os.getpid()}{tag}", BENCH_OUT=f"{root}/times",
               PYTHONPATH=os.pathsep.join(filter(None, [repo, os.path.join(repo, "bench"),
                                                        os.environ.get("PYTHONPATH")])),
               **(env_extra or {}))
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
        records = []
        if os.path.exists(env["BENCH_OUT"]):
            with open(env["BENCH_OUT"]) as f:
                records = [json.loads(line) for line in f]
    finally:
        shutil.rmtree(root, ignore_errors=True)
        _remove_cgroups(env["SANDBOX_CGROUP_PARENT"])
    return records


def merged(records: list[dict], start: str = "first") -> tuple[dict, dict, dict]:
    """The records of one session's processes as one: per-test times, CPU and page faults
    spent by whom over the marked tests, from ``start`` ("first": the first marked test's
    start; "after_first": its end) to the last one's end (summed over the workers; the
    whole machine's from the earliest start to the latest end)."""
    times: dict = {}
    cpu: dict = {}
    faults: dict = {}
    for record in records:
        times.update({k: v for k, v in record["times"].items() if not k.startswith("span:")})
        for into, data in ((cpu, record["cpu"]), (faults, record["faults"])):
            if start not in data or "last" not in data:
                continue
            for who in data["last"]:
                if who == "whole machine":
                    continue
                into[who] = into.get(who, 0) + data["last"][who] - data[start].get(who, 0)
    machine = [r["cpu"] for r in records if start in r["cpu"] and "last" in r["cpu"]]
    if machine:
        cpu["whole machine"] = (max(m["last"]["whole machine"] for m in machine)
                                - min(m[start]["whole machine"] for m in machine))
    return times, cpu, faults


def spans(records: list[dict], function: str) -> list[list[float]]:
    """Per process: [first logstart, first logfinish, last logfinish, tests] of ``function``'s
    tests."""
    return [r["times"][f"span:{function}"] for r in records if f"span:{function}" in r["times"]]


def report(records: list[dict], n: int, *, label: str = "", after_first: bool = False
           ) -> dict | None:
    """Print one session's figures; the overhead figures (None when timings are missing).

    ``after_first``: the CPU and page faults from each process's first marked test's end
    on (what starts once, a twin, is left out), per marked test after the first.
    """
    times, cpu, faults = merged(records, "after_first" if after_first else "first")
    counted = n - (len(records) if after_first else 0)
    plain = [t for k, t in times.items() if "test_plain" in k]
    marked = [t for k, t in times.items() if "test_marked" in k]
    if len(marked) != n or len(plain) != n:
        print(f"expected {n} + {n} timings, got {len(plain)} + {len(marked)}")
        return None
    p, m = statistics.median(plain) * 1000, statistics.median(marked) * 1000
    q = statistics.quantiles([t * 1000 for t in marked], n=10)
    print(f"{label}plain   median {p:7.2f} ms per test")
    print(f"{label}marked  median {m:7.2f} ms per test (p10 {q[0]:.2f}, p90 {q[-1]:.2f})")
    marked_spans = spans(records, "test_trivial.py::test_marked")
    whole = _whole_run(marked_spans)
    if whole is not None:
        print(f"{label}marked  whole run {whole:7.2f} ms per test "
              f"(first to last logfinish / tests after the first, per process; gaps included)")
    if cpu and counted > 0:
        spent = {who: seconds * 1000 / counted for who, seconds in cpu.items()}
        print(f"{label}CPU ms per marked test: "
              + ", ".join(f"{who} {ms:.1f}" for who, ms in spent.items()))
        wall = _wall(marked_spans, after_first)
        if wall and "whole machine" in cpu:
            # on a machine whose CPUs are all busy, the wall time follows the CPU
            busy = cpu["whole machine"] / ((os.cpu_count() or 1) * wall) * 100
            print(f"{label}machine busy {busy:.0f}% of {os.cpu_count()} CPUs over the marked tests")
    if faults and counted > 0:
        counts = {who: c / counted for who, c in faults.items()}
        print(f"{label}page faults per marked test: "
              + ", ".join(f"{who} {c:.0f}" for who, c in counts.items()))
    verdict = "meets" if m - p < TARGET_MS else "misses"
    print(f"{label}overhead median {m - p:7.2f} ms per sandboxed test ({m / p:.0f}x plain); "
          f"{verdict} the {TARGET_MS:.0f} ms target")
    if whole is not None:
        # a prepared test starts before its logstart: the per-test times leave that part out,
        # the whole run does not
        verdict = "meets" if whole - p < TARGET_MS else "misses"
        print(f"{label}overhead over the whole run {whole - p:7.2f} ms per sandboxed test "
              f"(whole run - plain median); {verdict} the {TARGET_MS:.0f} ms target")
    return {"median": m - p, "whole": None if whole is None else whole - p}


def _whole_run(spans_: list[list[float]]) -> float | None:
    """ms per test in a process, from its first to its last logfinish over the tests after
    its first (the first also waits for what starts once: a twin), all processes together."""
    after_first = sum(tests - 1 for *_times, tests in spans_)
    if not after_first:
        return None
    return sum(last - first_end for _start, first_end, last, _tests in spans_) * 1000 / after_first


def _wall(spans_: list[list[float]], after_first: bool) -> float | None:
    """Seconds from the earliest first marked start (or end) to the latest last end."""
    if not spans_:
        return None
    return max(s[2] for s in spans_) - min(s[1 if after_first else 0] for s in spans_)


def first_marked(records: list[dict]) -> list[float]:
    """Each worker's first marked test, in seconds (it waits for the worker's twin)."""
    firsts = []
    for record in records:
        marked = [(k, v) for k, v in record["times"].items()
                  if "test_marked" in k and not k.startswith("span:")]
        if marked:
            firsts.append(marked[0][1])
    return firsts


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = _parse(argv[:argv.index("--")] if "--" in argv else argv)
    if args.xdist:
        return compare_xdist(args.tests, args.xdist, extra)
    if args.concurrent:
        return compare_concurrent(args.tests, args.concurrent, extra)
    if args.redis:
        return compare_queue(args.tests, args.redis, args.workers, extra)
    records = session(args.tests, extra)
    return 0 if report(records, args.tests) is not None else 1


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tests", nargs="?", type=int, default=200,
                        help="trivial tests of each kind (default 200)")
    parser.add_argument("--xdist", type=int, metavar="W",
                        help="also run under pytest-xdist with W workers, and compare")
    parser.add_argument("--concurrent", type=int, metavar="K",
                        help="also run K sessions without xdist at once, and compare")
    parser.add_argument("--redis", metavar="URL",
                        help="send the marked tests through the job queue at URL, and compare")
    parser.add_argument("--workers", type=int, default=2,
                        help="sandbox worker processes for --redis (default 2)")
    return parser.parse_args(argv)


def compare_xdist(n: int, workers: int, extra: list[str]) -> int:
    """The overhead without xdist, then under -n W; both, and their ratio."""
    print("-- without xdist")
    alone = report(session(n, ["-p", "no:xdist", *extra]), n)
    print(f"-- under pytest-xdist, -n {workers}")
    records = session(n, ["-n", str(workers), *extra])
    under = report(records, n, label="xdist ", after_first=True)
    if alone is None or under is None:
        return 1
    firsts = first_marked(records)
    if firsts:
        print("xdist first marked test per worker (waits for its twin): "
              + ", ".join(f"{t:.2f} s" for t in firsts))
    ratio = under["median"] / alone["median"] if alone["median"] > 0 else float("inf")
    verdict = "meets" if ratio < XDIST_TARGET else "misses"
    print(f"xdist overhead median {under['median']:7.2f} ms per sandboxed test against "
          f"{alone['median']:.2f} without xdist: {ratio:.2f}x; {verdict} the "
          f"{XDIST_TARGET:.0f}x target")
    if alone["whole"] and under["whole"] is not None:
        _whole_run_ratio("xdist ", under, alone, "without xdist")
    return 0


def compare_concurrent(n: int, count: int, extra: list[str]) -> int:
    """The overhead without xdist, then with ``count`` such sessions at once: what an xdist
    that cost nothing would give (each worker forks its own tests; no twin, no controller)."""
    print("-- without xdist")
    alone = report(session(n, ["-p", "no:xdist", *extra]), n)
    print(f"-- {count} sessions at once, without xdist")
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        runs = list(pool.map(lambda i: session(n, ["-p", "no:xdist", *extra], tag=f"-{i}"),
                             range(count)))
    records = [_tagged(record, i) for i, run in enumerate(runs) for record in run]
    together = report(records, n * count, label="at once ")
    if alone is None or together is None:
        return 1
    print(f"at once overhead median {together['median']:7.2f} ms per sandboxed test against "
          f"{alone['median']:.2f} alone: {together['median'] / alone['median']:.2f}x")
    if alone["whole"] and together["whole"] is not None:
        _whole_run_ratio("at once ", together, alone, "alone")
    return 0


def _whole_run_ratio(label: str, under: dict, alone: dict, against: str) -> None:
    """The overhead over the whole run of one way beside the session alone's, and their ratio."""
    print(f"{label}overhead over the whole run {under['whole']:7.2f} ms per sandboxed test "
          f"against {alone['whole']:.2f} {against}: {under['whole'] / alone['whole']:.2f}x")


def _tagged(record: dict, i: int) -> dict:
    """A session's record with its tests named apart from another session's."""
    times = {(k if k.startswith("span:") else f"{i}:{k}"): v for k, v in record["times"].items()}
    return {**record, "times": times}


def compare_queue(n: int, url: str, count: int, extra: list[str]) -> int:
    """The overhead through the job queue (over the whole run) beside the local one."""
    print("-- on this host")
    alone = report(session(n, ["-p", "no:xdist", *extra]), n)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    print(f"-- through the queue at {url}, {count} sandbox worker(s) on queue {queue}")
    workers = _start_workers(url, queue, count)
    try:
        records = session(n, ["-p", "no:xdist", "--sandbox-redis", url, "--sandbox-queue", queue,
                              *extra])
    finally:
        _stop_workers(workers)
    under = report(records, n, label="queue ")
    if alone is None or under is None or under["whole"] is None or not alone["whole"]:
        return 1
    _whole_run_ratio("queue ", under, alone, "on this host")
    return 0


def _start_workers(url: str, queue: str, count: int) -> list[subprocess.Popen]:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get(
        "PYTHONPATH")])))
    return [subprocess.Popen([sys.executable, "-m", "sandbox", "worker", "--redis", url,
                              "--queue", queue], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(count)]


def _stop_workers(workers: list[subprocess.Popen]) -> None:
    for proc in workers:
        proc.terminate()
    for proc in workers:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
