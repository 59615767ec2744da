"""What a remote batch pays per test for its nested copy: namespaces, a root, a cgroup.

    python3 bench/nested.py [--rounds N]

Runs one sandbox made as a batch's is (the host image, the ``nested`` profile, a
view of its root, a delegated cgroup subtree, a workspace bound writable), and in
it makes N nested copies of a small Python process each of four ways, alternated
round by round: ``fork_nested`` alone; with a root of its own (``own_root``);
with a cgroup of its own (made, joined by the copy, read and removed, as
``pytest_sandbox.batch`` does); with both. Each copy exits at once; the time is
from the fork to the removal of its cgroup. Prints the medians and what the root
and the cgroup add to a bare copy. Root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox import Mount, SandboxSpec, run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INSIDE = r"""
import json, os, statistics, sys, time
from sandbox import Limits, delegated_cgroup, fork_nested

def once(own_root, cgroup):
    started = time.perf_counter()
    made, join = None, []
    if cgroup:
        made = delegated_cgroup("bench")
        made.make(Limits(memory="256m", pids=100))
        join = [os.open(path, os.O_WRONLY) for path in made.procs_files]
    pid = fork_nested("default", own_root=own_root, keep=())
    if pid == 0:
        for fd in join:
            os.write(fd, b"0")
        os._exit(0)
    for fd in join:
        os.close(fd)
    os.waitpid(pid, 0)
    if made is not None:
        made.stats()
        made.remove()
    return (time.perf_counter() - started) * 1000

ways = {"bare": (False, False), "own root": (True, False), "cgroup": (False, True),
        "both": (True, True)}
times = {name: [] for name in ways}
for _ in range(int(sys.argv[1])):
    for name, how in ways.items():
        times[name].append(once(*how))
print(json.dumps({name: statistics.median(values[3:]) for name, values in times.items()}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="copies made each way (default 60)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/nested.py: needs root (it makes sandboxes)", file=sys.stderr)
        return 2
    result = run(SandboxSpec(image="host", command=("python3", "-c", INSIDE, str(args.rounds)),
                             env={"PYTHONPATH": REPO}, seccomp="nested", root_view=True,
                             delegate_cgroup=True, workdir="/workspace",
                             mounts=(Mount(REPO, "/workspace", read_only=False),)), log_file=False)
    if result.exit_code != 0:
        print(result.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
        return 1
    medians = json.loads(result.stdout)
    for name, value in medians.items():
        print(f"{name:9} {value:6.2f} ms per copy (median of {args.rounds - 3})")
    bare = medians["bare"]
    print(f"a root of its own adds {medians['own root'] - bare:.2f} ms, a cgroup "
          f"{medians['cgroup'] - bare:.2f} ms, both {medians['both'] - bare:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
