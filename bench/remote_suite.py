"""pluggy 1.6.0's own suite, sandboxed here and through the job queue: issue 25's target.

    python3 bench/remote_suite.py --redis URL [--workers K] [--rounds R]

Unpacks pluggy's sdist (fetched at setup by scripts/test-cache.sh) into a temp
dir, starts K ``sandbox worker`` processes (default 2) on a queue of its own,
and alternates, R rounds (default 3): ``pytest --sandbox`` on this host, then
``pytest --sandbox --sandbox-redis URL`` (every test through the queue, in
batches). Prints each run's wall time and counts, the medians, and their ratio
against the target (the queue at most 2x the local time). Root, as the
plugin's sandboxes need.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pytest_overhead import _start_workers, _stop_workers

SDIST = "pluggy-1.6.0.tar.gz"
TARGET = 2.0


def sdist_path() -> str | None:
    """pluggy's sdist in the test cache, or None (said on stdout) when it is not there."""
    sdist = os.path.join(os.environ.get("SANDBOX_TEST_CACHE", "/opt/sandbox-tests"), "sdist", SDIST)
    if not os.path.exists(sdist):
        print(f"no {sdist}: run scripts/test-cache.sh first")
        return None
    return sdist


def unpack(sdist: str, tmp: str) -> str:
    """The suite's directory, unpacked under ``tmp``."""
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp, filter="data")
    return os.path.join(tmp, SDIST.removesuffix(".tar.gz"))


def main(argv: list[str]) -> int:
    args = _parse(argv)
    sdist = sdist_path()
    if sdist is None:
        return 125
    with tempfile.TemporaryDirectory(prefix="remote-suite-") as tmp:
        suite = unpack(sdist, tmp)
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        workers = _start_workers(args.redis, queue, args.workers)
        try:
            times, counts = _alternate(suite, args, queue)
        finally:
            _stop_workers(workers)
    if not same_counts(counts):
        return 1
    local, remote = statistics.median(times["local"]), statistics.median(times["queue"])
    ratio = remote / local
    print(f"median: local --sandbox {local:.2f} s, through the queue ({args.workers} workers) "
          f"{remote:.2f} s: {ratio:.2f}x; {'meets' if ratio <= TARGET else 'misses'} the "
          f"{TARGET:.0f}x target")
    return 0


def same_counts(counts: list[str]) -> bool:
    """True when every run gave the same counts; else says how they differ. A run that
    failed (a worker whose sandbox cannot import pytest_sandbox) is no time to compare."""
    if len(set(counts)) == 1:
        return True
    print(f"the runs' counts differ ({'; '.join(sorted({c.splitlines()[0] for c in counts}))}): no ratio")
    return False


def _alternate(suite: str, args: argparse.Namespace,
               queue: str) -> tuple[dict[str, list[float]], list[str]]:
    """Each way's times, and every run's counts (or how it failed)."""
    ways = {"local": [], "queue": ["--sandbox-redis", args.redis, "--sandbox-queue", queue]}
    times: dict[str, list[float]] = {name: [] for name in ways}
    seen = []
    for round_ in range(args.rounds):
        for name, extra in ways.items():
            seconds, counts = _run(suite, extra)
            times[name].append(seconds)
            seen.append(counts)
            print(f"round {round_ + 1} {name:5} {seconds:7.2f} s  {counts}", flush=True)
    return times, seen


def _run(suite: str, extra: list[str], prefix: tuple[str, ...] = ()) -> tuple[float, str]:
    """One pytest session over ``suite`` (``prefix``: a command it runs under, e.g. nsenter)."""
    argv = [*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
            "--sandbox", *extra]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=suite, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed).*?) in [\d.]+s", proc.stdout, re.MULTILINE)
    return seconds, found[-1] if found else f"exit {proc.returncode}: {proc.stdout[-1500:]}"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", required=True, metavar="URL", help="the job queue's Redis")
    parser.add_argument("--workers", type=int, default=2, help="sandbox workers to start (2)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternated (3)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
