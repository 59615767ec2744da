"""Build benchmark: `sandbox build` against `buildah bud --layers`, warm and cold, one file.

    sudo python3 bench/images.py --only builds [--builds 20]    (or bench/builds.py alone)

The Sandboxfile has 7 instructions: FROM busybox, COPY a 200-file directory (1 KiB
each), RUN, ENV, WORKDIR, LABEL, CMD. Both builders build the same file from the same
context, with no network for RUN, each timed as the whole command a user runs (a
subprocess, wall time):

- warm: nothing changed since the last build; every step is reused from the cache
  (``sandbox build -t bench CTX``; ``buildah bud --layers -t bench CTX``).
  Targets: at most 1.2x buildah.
- cold: ``--no-cache`` for both: every step runs. Target: within 1.5x of buildah.

The runs alternate (ours, buildah, ours, ...) after a warm-up of each. Our command
runs with its bytecode compiled once into a private PYTHONPYCACHEPREFIX, as an
installed package has it; `python3 -c pass` is timed alongside (the interpreter's own
start-up, which every run of ours pays). buildah is Debian's (installed with apt-get
when missing), with ``--runtime runc --network none --pull-never --storage-driver
overlay`` and its storage under the bench's temp dir; its busybox is ours, pulled
from our store's OCI layout, so both start from the same image.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SANDBOXFILE = """\
FROM busybox
COPY files /srv/files
RUN ls /srv/files | wc -l > /srv/count
ENV APP_MODE=bench
WORKDIR /srv
LABEL bench=images
CMD ["cat", "/srv/count"]
"""


def make_context(root: Path) -> Path:
    ctx = root / "context"
    (ctx / "files").mkdir(parents=True)
    for i in range(200):
        (ctx / "files" / f"f{i:03d}").write_bytes(os.urandom(1024))
    (ctx / "Sandboxfile").write_text(SANDBOXFILE)
    return ctx


class Ours:
    name = "sandbox build"

    def __init__(self, tmp: Path, ctx: Path) -> None:
        self.ctx = ctx
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env.update(PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=str(tmp / "pycache"))

    def build(self, *extra: str) -> None:
        _run([sys.executable, "-m", "sandbox", "build", "-q", "-t", "bench", *extra, str(self.ctx)],
             self.env)


class Buildah:
    name = "buildah bud --layers"

    def __init__(self, tmp: Path, ctx: Path, store: Path) -> None:
        self.ctx = ctx
        self.base = ["buildah", "--root", str(tmp / "buildah-root"), "--runroot",
                     str(tmp / "buildah-run"), "--storage-driver", "overlay"]
        _run(self.base + ["pull", "-q", f"oci:{store}:busybox:latest"])
        image = _run(self.base + ["images", "-q"]).split()[0]
        _run(self.base + ["tag", image, "localhost/busybox:latest"])

    def build(self, *extra: str) -> None:
        _run(self.base + ["bud", "--layers", "--runtime", "runc", "--network", "none",
                          "--pull-never", "-q", "-t", "bench", *extra, "-f",
                          str(self.ctx / "Sandboxfile"), str(self.ctx)])

    def clean(self) -> None:
        subprocess.run(self.base + ["rm", "--all"], capture_output=True)
        subprocess.run(self.base + ["rmi", "--all", "--force"], capture_output=True)


def _run(cmd: list[str], env: dict | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])}... failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def ensure_buildah() -> None:
    if shutil.which("buildah") is None:
        print("installing buildah (apt-get install buildah)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "buildah"], check=True,
                       stdout=subprocess.DEVNULL)


def timed(call) -> float:
    t0 = time.perf_counter()
    call()
    return (time.perf_counter() - t0) * 1000


def compare_builds(tmp: Path, n: int, store: Path) -> None:
    ensure_buildah()
    ctx = make_context(tmp)
    ours, theirs = Ours(tmp, ctx), Buildah(tmp, ctx, store)
    try:
        builders = (ours, theirs)
        for builder in builders:  # warm-up: the caches filled, our bytecode compiled
            builder.build()
            builder.build()
        rows = {}
        for label, extra, count in (("warm", (), n), ("cold", ("--no-cache",), max(n // 4, 3))):
            times: dict[str, list[float]] = {b.name: [] for b in builders}
            times["python3 -c pass"] = []
            for _ in range(count):
                for builder in builders:
                    times[builder.name].append(timed(lambda: builder.build(*extra)))  # noqa: B023 - timed calls it at once
                times["python3 -c pass"].append(timed(lambda: _run([sys.executable, "-c", "pass"])))
            rows[label] = (count, times)
        report(rows)
    finally:
        theirs.clean()


def report(rows: dict) -> None:
    targets = {"warm": 1.2, "cold": 1.5}
    for label, (count, times) in rows.items():
        print(f"\n{label} build of a 7-instruction Sandboxfile, {count} runs each, alternated (ms)")
        print(f"{'command':<24} {'median':>8} {'p90':>8}")
        for name, values in times.items():
            p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
            print(f"{name:<24} {statistics.median(values):>8.1f} {p90:>8.1f}")
        ratio = statistics.median(times["sandbox build"]) / statistics.median(times["buildah bud --layers"])
        print(f"ratio sandbox build / buildah: {ratio:.2f} (target <= {targets[label]})")


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20, help="warm runs per builder (cold: n/4)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sandbox-bench-builds-"))
    os.environ["SANDBOX_STATE_DIR"] = str(tmp / "lib")
    os.environ["SANDBOX_RUN_DIR"] = str(tmp / "run")
    os.environ.setdefault("SANDBOX_CGROUP_PARENT", "sandbox-bench")
    sys.path.insert(0, str(REPO))
    try:
        from sandbox import images

        images.get("busybox")
        compare_builds(tmp, args.n, Path(os.environ["SANDBOX_STATE_DIR"]) / "images")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
