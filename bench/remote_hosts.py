"""pluggy 1.6.0's suite through the job queue on one simulated machine, then on two.

    python3 bench/remote_hosts.py [--rounds R]

Issue 25's last target: distributing marked tests is worth it when two machines
are faster than one. The machines are network namespaces on one simulated LAN, as
in tests/test_jobs_hosts.py (tests/hosts_support.py): Redis and the pytest session
on the first, a `sandbox worker` on each of two others with its own state roots.
The first worker listens on both queues, the second on one: a session sent to the
queue only the first listens on runs on one machine, a session sent to the other
is cut into a batch per machine. Each round runs `pytest --sandbox --sandbox-redis`
both ways, alternated, after `pytest --sandbox` on this host for reference. Prints
the times, counts, medians and the two-machine/one-machine ratio (under 1 meets the
target). The machines share this host's CPUs: on a 2-core host each batch has a
core of its own only when the rest of the host is quiet. Root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from remote_suite import _run, same_counts, sdist_path, unpack  # noqa: E402

from tests.hosts_support import Lan, LanRedis  # noqa: E402

ONE, TWO = "one-machine", "two-machines"


def main(argv: list[str]) -> int:
    args = _parse(argv)
    sdist = sdist_path()
    if sdist is None:
        return 125
    with tempfile.TemporaryDirectory(prefix="remote-hosts-") as tmp:
        suite = unpack(sdist, tmp)
        lan = Lan(Path(tmp) / "lan").start()
        server = None
        workers: list[subprocess.Popen] = []
        try:
            server = LanRedis(lan).start()
            workers = [_worker(lan, server, 1, [ONE, TWO], tmp), _worker(lan, server, 2, [TWO], tmp)]
            _listening(server, {ONE: 1, TWO: 2})
            times, counts = _alternate(suite, args.rounds, server.url, lan.hosts[0])
        finally:
            for proc in workers:
                proc.terminate()
            for proc in workers:
                proc.wait(60)
            if server is not None:
                server.stop()
            lan.stop()
    if not same_counts(counts):
        return 1
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians[TWO] / medians[ONE]
    print(f"median: local --sandbox {medians['local']:.2f} s; through the queue on one machine "
          f"{medians[ONE]:.2f} s, on two {medians[TWO]:.2f} s: {ratio:.2f}x; "
          f"{'meets' if ratio < 1 else 'misses'} the target (two machines faster than one)")
    return 0


def _worker(lan: Lan, server: LanRedis, index: int, queues: list[str], tmp: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "sandbox", "worker", "--redis", server.url, "--name", f"host{index}"]
    for queue in queues:
        argv += ["--queue", queue]
    return lan.popen(index, argv, Path(tmp) / f"worker{index}.log")


def _listening(server: LanRedis, wanted: dict[str, int], timeout: float = 120) -> None:
    from rq import Queue, Worker

    conn = server.client()
    deadline = time.monotonic() + timeout
    while any(Worker.count(queue=Queue(q, connection=conn)) < n for q, n in wanted.items()):
        if time.monotonic() > deadline:
            raise SystemExit(f"the workers did not listen on {sorted(wanted)} within {timeout:.0f} s")
        time.sleep(0.1)


def _alternate(suite: str, rounds: int, url: str,
               first_host: str) -> tuple[dict[str, list[float]], list[str]]:
    """Each way's times, and every run's counts (or how it failed)."""
    session_host = ("nsenter", f"--net=/run/netns/{first_host}", "--")
    ways: dict[str, tuple[list[str], tuple[str, ...]]] = {
        "local": ([], ()),
        ONE: (["--sandbox-redis", url, "--sandbox-queue", ONE], session_host),
        TWO: (["--sandbox-redis", url, "--sandbox-queue", TWO], session_host)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    seen = []
    for round_ in range(rounds):
        for name, (extra, prefix) in ways.items():
            seconds, counts = _run(suite, extra, prefix)
            times[name].append(seconds)
            seen.append(counts)
            print(f"round {round_ + 1} {name:12} {seconds:7.2f} s  {counts}", flush=True)
    return times, seen


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each way, alternated (3)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
