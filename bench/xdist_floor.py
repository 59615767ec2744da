"""The floor under issue 25's xdist ratio: a test that keeps two cores busy, no sandbox.

    python3 bench/xdist_floor.py [--xdist W] [--rounds R] [--tests N] [--ms MS]

A marked test keeps more than one core busy without xdist: its pytest, the
zygote making the next sandbox and the test's own process overlap. Under
``-n W`` on a machine with W cores each worker has about one. This runs N
plain tests that do the same without any sandbox (each burns MS ms of CPU in
itself and, at the same time, MS ms in a forked child), with plain pytest and
with pytest-xdist's ``-n W``, alternated R rounds, and prints the median time
per test of each (from ``pytest_runtest_logstart`` to ``logfinish``, in the
process that ran it) and their ratio: what any test that uses two cores at
once pays per worker under ``-n W`` here, beside what
``bench/pytest_overhead.py --xdist W`` prints for marked tests.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

TESTS = """
import os, time, pytest

def burn(ms):
    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        pass

@pytest.mark.parametrize("i", range({tests}))
def test_two_cores_at_once(i):
    pid = os.fork()
    if pid == 0:
        burn({ms})
        os._exit(0)
    burn({ms})
    os.waitpid(pid, 0)
"""

#: Times each test where it runs (a worker, or the plain session; not xdist's controller).
CONFTEST = """
import json, os, time

started, took = {}, []

def pytest_runtest_logstart(nodeid, location):
    started[nodeid] = time.perf_counter()

def pytest_runtest_logfinish(nodeid, location):
    if nodeid in started:
        took.append((time.perf_counter() - started.pop(nodeid)) * 1000)

def pytest_sessionfinish(session):
    if took and (os.environ.get("PYTEST_XDIST_WORKER") or not session.config.pluginmanager.hasplugin("dsession")):
        with open(os.path.join(os.environ["FLOOR_OUT"], f"{os.getpid()}.json"), "w") as f:
            json.dump(took, f)
"""


def run_once(suite: str, out: str, xdist: int | None) -> float:
    """The median time per test of one session (``xdist``: with ``-n xdist``)."""
    for path in glob.glob(os.path.join(out, "*.json")):
        os.remove(path)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:sandbox"]
    argv += ["-p", "xdist", "-n", str(xdist)] if xdist else ["-p", "no:xdist"]
    proc = subprocess.run(argv, cwd=suite, capture_output=True, text=True,
                          env=dict(os.environ, FLOOR_OUT=out), timeout=600)
    times = [t for path in glob.glob(os.path.join(out, "*.json")) for t in _load(path)]
    if proc.returncode != 0 or not times:
        raise SystemExit(f"the session failed ({proc.returncode}): {proc.stdout[-1000:]}{proc.stderr[-1000:]}")
    return statistics.median(times)


def _load(path: str) -> list[float]:
    with open(path) as f:
        return json.load(f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xdist", type=int, default=2, metavar="W", help="pytest-xdist workers (2)")
    parser.add_argument("--rounds", type=int, default=3, help="sessions of each, alternated (3)")
    parser.add_argument("--tests", type=int, default=60, help="tests per session (60)")
    parser.add_argument("--ms", type=int, default=10, help="CPU ms each of a test's two processes burns (10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xdist-floor-") as tmp:
        suite, out = os.path.join(tmp, "suite"), os.path.join(tmp, "out")
        os.makedirs(suite)
        os.makedirs(out)
        with open(os.path.join(suite, "test_floor.py"), "w") as f:
            f.write(TESTS.format(tests=args.tests, ms=args.ms))
        with open(os.path.join(suite, "conftest.py"), "w") as f:
            f.write(CONFTEST)
        plain, under = [], []
        for round_ in range(args.rounds):
            plain.append(run_once(suite, out, None))
            under.append(run_once(suite, out, args.xdist))
            print(f"round {round_ + 1}: plain {plain[-1]:.1f} ms per test, -n {args.xdist} "
                  f"{under[-1]:.1f} ms ({under[-1] / plain[-1]:.2f}x)", flush=True)
    cores = os.cpu_count()
    ratio = statistics.median(under) / statistics.median(plain)
    print(f"median: plain {statistics.median(plain):.1f} ms per test, -n {args.xdist} "
          f"{statistics.median(under):.1f} ms: {ratio:.2f}x, on {cores} cores, for a test that keeps "
          "two of them busy and no sandbox")
    return 0


if __name__ == "__main__":
    sys.exit(main())
