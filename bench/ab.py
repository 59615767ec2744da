"""Compare this tree with another revision on bench/pytest_overhead.py, in alternating runs.

    python3 bench/ab.py REV [-n PAIRS] [--tests N]
    python3 bench/ab.py REV --start [-n PAIRS] [--starts N]

The VM this project is measured on drifts 20-30% in speed within minutes, so
two figures taken minutes apart say little: this runs the revision's
benchmark and this tree's one after the other, PAIRS times, and prints each
figure's median on both sides and the median of the paired differences
(this tree minus REV), with how many pairs moved which way. An effect under
~0.5 ms needs 20 pairs or more to show (one that looked like -1 ms over 8
pairs was +0.3 over 20). Both sides run from temporary git worktrees side
by side, removed at the end: REV, and this tree as it is (uncommitted changes
included, through ``git stash create``). Running one side from here and the
other from /tmp would compare more than the code: the sandbox binds the
package's own directory, and where it lies changes what a bind costs.

``--start`` compares the start instead, as bench/startup.py's "api" row
measures it (busybox ``true`` through ``run()``, each tree with its own
defaults, N starts a side after 20 unmeasured), with bwrap on the same
rootfs in the same pair: each side's median, the caller's CPU per start,
and bwrap's median over each side's. Each side keeps its state in a
temporary directory of its own (tmpfs when TMPDIR is /dev/shm), so two
trees' image stores never meet.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from peers import bwrap_command  # bench/

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: figure name -> pattern in bench/pytest_overhead.py's output (one number)
FIGURES = {
    "per-test overhead ms": r"overhead median\s+([\d.]+)",
    "whole-run overhead ms": r"overhead over the whole run\s+([\d.]+)",
}
#: "CPU ms" and "page faults" lines: "WHO VALUE, WHO VALUE, ..."
BREAKDOWNS = {"CPU ms": r"CPU ms per marked test: (.*)", "faults": r"page faults per marked test: (.*)"}


def figures(output: str) -> dict[str, float]:
    """The numbers one run of bench/pytest_overhead.py printed (those it printed)."""
    found = {}
    for name, pattern in FIGURES.items():
        if m := re.search(pattern, output):
            found[name] = float(m.group(1))
    for kind, pattern in BREAKDOWNS.items():
        if m := re.search(pattern, output):
            for part in m.group(1).split(","):
                who, _, value = part.strip().rpartition(" ")
                found[f"{kind}: {who}"] = float(value)
    return found


#: One side of a --start pair, run with the tree first on sys.path: its median start, the
#: caller's CPU per start, and the busybox rootfs bwrap is run on.
START = """
import json, resource, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from sandbox import SandboxSpec, images, run
spec = SandboxSpec(image="busybox", command=["true"])
for _ in range(20):
    run(spec)
times = []
before = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    run(spec)
    times.append(time.perf_counter() - t)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(json.dumps({"start ms": statistics.median(times) * 1000, "caller CPU ms": cpu * 1000 / len(times),
                  "rootfs": images.get("busybox").layers[-1]}))
"""


def start_once(tree: str, starts: int, state: str) -> dict[str, float]:
    """One side's start figures, with bwrap measured right after it on its rootfs."""
    env = dict(os.environ, SANDBOX_STATE_DIR=os.path.join(state, "lib"),
               SANDBOX_RUN_DIR=os.path.join(state, "run"), SANDBOX_CGROUP_PARENT="sandbox-bench-ab")
    proc = subprocess.run([sys.executable, "-c", START, tree, str(starts)], capture_output=True,
                          text=True, env=env, cwd=tree)
    try:
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"no figures from {tree}: {proc.stdout[-300:]}{proc.stderr[-300:]}") from None
    found["bwrap / start"] = bwrap_median(found.pop("rootfs"), starts) / found["start ms"]
    return found


def bwrap_median(rootfs: str, starts: int) -> float:
    """bwrap's median start on ``rootfs`` in ms, as bench/startup.py runs it, after 20 unmeasured."""
    argv = bwrap_command(rootfs)
    times = []
    for _ in range(20 + starts):
        t = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise RuntimeError(f"bwrap failed: {proc.stderr[-300:]}")
    return statistics.median(times[20:]) * 1000


def run_once(tree: str, tests: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, os.path.join(tree, "bench", "pytest_overhead.py"),
                           str(tests)], capture_output=True, text=True)
    found = figures(proc.stdout)
    if not found:
        raise RuntimeError(f"no figures from {tree}: {proc.stdout[-300:]}{proc.stderr[-300:]}")
    return found


def report(before: list[dict[str, float]], after: list[dict[str, float]]) -> None:
    names = [n for n in after[0] if all(n in r for r in before + after)]
    print(f"{'figure':38s} {'REV':>8s} {'this':>8s} {'paired':>8s}  this lower/higher")
    for name in names:
        a = [r[name] for r in before]
        b = [r[name] for r in after]
        diffs = [y - x for x, y in zip(a, b)]
        print(f"{name:38s} {statistics.median(a):8.2f} {statistics.median(b):8.2f} "
              f"{statistics.median(diffs):+8.2f}  {sum(d < 0 for d in diffs)}/{sum(d > 0 for d in diffs)}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rev", help="the revision to compare with (e.g. HEAD~1, a commit, a branch)")
    parser.add_argument("-n", "--pairs", type=int, default=20, help="alternating pairs (default 20)")
    parser.add_argument("--tests", type=int, default=200, help="trivial tests per side of a run")
    parser.add_argument("--start", action="store_true",
                        help="compare the start (busybox true through run()) with bwrap beside it")
    parser.add_argument("--starts", type=int, default=200, help="starts per side of a --start pair")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("ab.py: needs root, as bench/pytest_overhead.py does", file=sys.stderr)
        return 2
    if args.pairs < 1 or args.starts < 1:
        print(f"ab.py: -n and --starts must be at least 1, not {args.pairs} and {args.starts}",
              file=sys.stderr)
        return 2
    if args.start and not shutil.which("bwrap"):
        print("ab.py: --start runs bwrap beside each side: apt-get install bubblewrap", file=sys.stderr)
        return 2
    check = subprocess.run(["git", "-C", HERE, "rev-parse", "--verify", "--quiet",
                            f"{args.rev}^{{commit}}"], capture_output=True, text=True)
    if check.returncode != 0:
        print(f"ab.py: {args.rev!r} is not a revision of {HERE}", file=sys.stderr)
        return 2
    stash = subprocess.run(["git", "-C", HERE, "stash", "create"], capture_output=True,
                           text=True, check=True).stdout.strip()
    this = stash or subprocess.run(["git", "-C", HERE, "rev-parse", "HEAD"], capture_output=True,
                                   text=True, check=True).stdout.strip()
    trees: list[str] = []
    states: list[str] = []  # --start: each side's engine state
    before, after = [], []
    try:
        for rev in (check.stdout.strip(), this):
            tree = tempfile.mkdtemp(prefix="bench-ab-")
            os.rmdir(tree)  # git makes it
            subprocess.run(["git", "-C", HERE, "worktree", "add", "--detach", "--quiet", tree, rev],
                           check=True)
            trees.append(tree)
        states += [tempfile.mkdtemp(prefix="bench-ab-state-") for _ in trees]
        for i in range(args.pairs):
            if args.start:
                before.append(start_once(trees[0], args.starts, states[0]))
                after.append(start_once(trees[1], args.starts, states[1]))
                figure = "start ms"
            else:
                before.append(run_once(trees[0], args.tests))
                after.append(run_once(trees[1], args.tests))
                figure = "whole-run overhead ms"
            print(f"pair {i + 1}/{args.pairs}: {figure} "
                  f"{before[-1].get(figure, float('nan')):.2f} (REV) "
                  f"{after[-1].get(figure, float('nan')):.2f} (this)", flush=True)
    except KeyboardInterrupt:
        print("interrupted: the pairs so far")
    except RuntimeError as exc:
        print(f"ab.py: stopped: {exc}", file=sys.stderr)
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", HERE, "worktree", "remove", "--force", tree])
            shutil.rmtree(tree, ignore_errors=True)
        for state in states:
            shutil.rmtree(state, ignore_errors=True)
    pairs = min(len(before), len(after))
    if pairs == 0:
        return 1
    print(f"\n{args.rev} against this tree, {pairs} alternating pairs (medians; paired: this - REV)")
    report(before[:pairs], after[:pairs])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
