"""Compare this tree with another revision on bench/pytest_overhead.py, in alternating runs.

    python3 bench/ab.py REV [-n PAIRS] [--tests N]

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
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

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
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("ab.py: needs root, as bench/pytest_overhead.py does", file=sys.stderr)
        return 2
    if args.pairs < 1:
        print(f"ab.py: -n must be at least 1, not {args.pairs}", file=sys.stderr)
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
    trees = []
    before, after = [], []
    try:
        for rev in (check.stdout.strip(), this):
            tree = tempfile.mkdtemp(prefix="bench-ab-")
            os.rmdir(tree)  # git makes it
            subprocess.run(["git", "-C", HERE, "worktree", "add", "--detach", "--quiet", tree, rev],
                           check=True)
            trees.append(tree)
        for i in range(args.pairs):
            before.append(run_once(trees[0], args.tests))
            after.append(run_once(trees[1], args.tests))
            print(f"pair {i + 1}/{args.pairs}: whole-run overhead "
                  f"{before[-1].get('whole-run overhead ms', float('nan')):.2f} (REV) "
                  f"{after[-1].get('whole-run overhead ms', float('nan')):.2f} (this)", flush=True)
    except KeyboardInterrupt:
        print("interrupted: the pairs so far")
    except RuntimeError as exc:
        print(f"ab.py: stopped: {exc}", file=sys.stderr)
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", HERE, "worktree", "remove", "--force", tree])
            shutil.rmtree(tree, ignore_errors=True)
    pairs = min(len(before), len(after))
    if pairs == 0:
        return 1
    print(f"\n{args.rev} against this tree, {pairs} alternating pairs (medians; paired: this - REV)")
    report(before[:pairs], after[:pairs])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
