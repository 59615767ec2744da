"""Startup benchmark: run `true` in a container, N times, through us and our peers.

    sudo python3 bench/startup.py [-n 200]

What is measured, per call, wall time from "start it" to "torn down":

- api                       ``run(SandboxSpec(image="busybox", command=["true"]))``: the
                            full container (overlay rootfs, all namespaces, cgroup, default
                            limits), created, run, waited for and destroyed, in this process.
                            After the warm-up this is the steady state: containers come
                            from the zygote's spares (the first one is forked directly).
- cli (incl. python startup) ``sandbox run busybox -- true`` as a subprocess: includes the
                            interpreter's startup and the imports (~0.2 s), no engine number.
- bwrap                     ``bwrap --unshare-all --die-with-parent --ro-bind ROOTFS /
                            --proc /proc --dev /dev --tmpfs /tmp true``: namespaces and
                            mounts only; no overlay, no cgroup.
- runc run                  ``runc --root TMP/runc-state run --bundle TMP/runc-bundle ID``:
                            ``runc spec`` plus a copy of the rootfs (read-only), args
                            ["true"], no terminal, a cgroup namespace; runc deletes it on exit.
- podman run --rm           ``podman --runtime runc run --rm --network none --ulimit
                            nofile=1024:1024 --ulimit nproc=1024:1024 IMAGE true`` on the
                            rootfs ``podman import``ed (the rlimits: podman's defaults need
                            CAP_SYS_RESOURCE, which this host lacks).
- api, every limit set      FULL_LIMITS below, alternated run by run with
- api, Limits.unlimited()   nothing limited; the difference of their medians is what
                            limits cost (target: at most 2 ms).

Every peer runs on the same busybox rootfs, taken from our image store, and only
when installed (a skipped peer prints why). Each is warmed up first. Slow peers run
fewer times (the count is in the table). Read the medians; p90 shows the tail; the
ratio is each median over the api median (below 1 is faster than us).

The state and run dirs (the sandbox's record, log and mount points) live under one
temp dir on $TMPDIR's filesystem (default /tmp): run with TMPDIR=/dev/shm to see the
engine on tmpfs, as /run/sandbox is on most hosts (the facts line says which it was).

Everything lives under that temp dir (SANDBOX_STATE_DIR, SANDBOX_RUN_DIR, runc's
state and bundle) and the cgroup parent ``sandbox-bench``; all of it, and the
imported podman image, is removed at the end, also after an error.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
os.environ["SANDBOX_STATE_DIR"] = str(TMP / "lib")
os.environ["SANDBOX_RUN_DIR"] = str(TMP / "run")
os.environ["SANDBOX_CGROUP_PARENT"] = "sandbox-bench"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import (  # noqa: E402 - bench/
    bwrap_command,
    peer_cgroups,
    podman_command,
    podman_image,
    remove_peer_cgroups,
)
from scratch import ScratchParser  # noqa: E402 - bench/

from sandbox import Limits, SandboxSpec, images, run  # noqa: E402
from sandbox.cgroups import host_cgroups  # noqa: E402

FULL_LIMITS = Limits(memory="256m", cpus=1, cpuset="0", pids=128, timeout="30s",
                     output="1m", disk="64m", ulimits=("nofile=1024",))
QUIET = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}


def timed(fn) -> float:
    """Milliseconds one call of fn takes."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure(fn, n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    return [timed(fn) for _ in range(n)]


def sh(argv: list[str]) -> None:
    """Run a peer's command; a failure stops the bench with the peer's stderr."""
    proc = subprocess.run(argv, **QUIET)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode().strip()}")


def api(limits: Limits | None = None):
    spec = SandboxSpec(image="busybox", command=["true"], **({"limits": limits} if limits else {}))

    def call() -> None:
        result = run(spec)
        if result.exit_code != 0:
            raise RuntimeError(f"api run exited {result.exit_code}: {result.stderr!r}")
    return call


def cli_command() -> list[str] | None:
    """The console script next to this interpreter (a pyenv shim would add its own cost)."""
    script = Path(sys.executable).parent / "sandbox"
    found = str(script) if script.exists() else shutil.which("sandbox")
    return [found, "run", "busybox", "--", "true"] if found else None


def runc_bundle(rootfs: str) -> Path:
    """`runc spec`, then: a copy of the rootfs, read-only, `true`, no tty, own cgroup ns."""
    bundle = TMP / "runc-bundle"
    bundle.mkdir()
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(bundle / "rootfs"), "readonly": True}
    config["process"].update(args=["true"], terminal=False)
    namespaces = config["linux"]["namespaces"]
    if not any(ns["type"] == "cgroup" for ns in namespaces):
        namespaces.append({"type": "cgroup"})
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def runc_call(bundle: Path):
    state = str(TMP / "runc-state")
    return lambda: sh(["runc", "--root", state, "run", "--bundle", str(bundle), f"bench-{uuid.uuid4().hex[:12]}"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fs_type(path: Path) -> str:
    """Filesystem type of the mount holding path (longest mount-point prefix)."""
    best = ("", "?")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point, fstype = line.split()[4], line.split(" - ")[1].split()[0]
        if (str(path) + "/").startswith(point.rstrip("/") + "/") and len(point) >= len(best[0]):
            best = (point, fstype)
    return best[1]


def machine_facts() -> None:
    print(f"kernel {os.uname().release}, nproc {os.cpu_count()}"
          f" (usable {len(os.sched_getaffinity(0))}), python {sys.version.split()[0]}")
    print(f"cgroups: {host_cgroups().describe()}")
    print(f"state and run dirs under {TMP} ({fs_type(TMP)}; /run is {fs_type(Path('/run'))})")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("PYTHONDONTWRITEBYTECODE is set: without cached .pyc the cli compiles its imports on every run")
    unified = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/sys/fs/cgroup/unified":
            unified = line.split(" - ")[1].split()[2]
    if unified is None:
        print("/sys/fs/cgroup/unified: not mounted (pure v1 or pure v2)")
    else:
        fav = "favordynmods" in unified.split(",")
        print(f"/sys/fs/cgroup/unified mounted ({unified}): favordynmods {'ON' if fav else 'OFF'}"
              + ("" if fav else " -- v1 task migration waits an RCU grace period (~5-15 ms per start"
                 " for us and runc)"))
    for tool in ("bwrap", "runc", "podman"):
        if shutil.which(tool):
            out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
            print(f"{tool}: {out.splitlines()[0] if out else '?'}")


def peers(rootfs: str, n: int, cleanup: list) -> list[tuple[str, object, int]]:
    """(name, callable, runs) for each installed peer; prints why one is skipped."""
    found = []
    if cli := cli_command():
        found.append(("cli (incl. python startup)", lambda: sh(cli), max(10, n // 4)))
    else:
        print("skip cli: no `sandbox` console script (pip install -e .)")
    if shutil.which("bwrap"):
        found.append(("bwrap", lambda: sh(bwrap_command(rootfs)), n))
    else:
        print("skip bwrap: not installed (apt-get install bubblewrap)")
    if shutil.which("runc"):
        found.append(("runc run", runc_call(runc_bundle(rootfs)), max(10, n // 4)))
    else:
        print("skip runc: not installed (apt-get install runc)")
    if shutil.which("podman"):
        image = podman_image(rootfs, cleanup, TMP)
        found.append(("podman run --rm", lambda: sh(podman_command(image)),
                      max(5, n // 20)))
    else:
        print("skip podman: not installed (apt-get install podman)")
    return found


def limits_overhead(n: int, warmup: int) -> tuple[list[float], list[float]]:
    """Alternate limited and unlimited runs, so drift hits both alike."""
    limited, unlimited = api(FULL_LIMITS), api(Limits.unlimited())
    for _ in range(warmup):
        limited(), unlimited()
    a, b = [], []
    for _ in range(n):
        a.append(timed(limited))
        b.append(timed(unlimited))
    return a, b


def report(rows: list[tuple[str, int, list[float]]]) -> None:
    base = statistics.median(rows[0][2])
    print(f"\n{'name':<28}{'runs':>6}{'median ms':>11}{'p90 ms':>9}{'x api':>8}")
    for name, _, times in rows:
        med = statistics.median(times)
        print(f"{name:<28}{len(times):>6}{med:>11.2f}{pct(times, 0.9):>9.2f}{med / base:>8.2f}")


def leftovers(before: set[str]) -> list[str]:
    """What this bench could have left on the host."""
    left = [p for p in host_cgroups().parent_paths() if os.path.isdir(p)]
    left += sorted(peer_cgroups() - before)
    mounts = Path("/proc/self/mountinfo").read_text()
    left += [f"mount under {TMP}" for line in mounts.splitlines() if str(TMP) in line]
    return left


def trace_steps(n: int) -> None:
    """Median time of each step inside the container (SANDBOX_TRACE=1), in order."""
    from sandbox.runtime import Sandbox

    os.environ["SANDBOX_TRACE"] = "1"
    spec = SandboxSpec(image="busybox", command=["true"])
    steps: dict[str, list[float]] = {}
    totals = []
    for _ in range(5):  # the first container is forked here, the rest by the zygote's spares
        run(spec)
    for _ in range(n):
        t0 = time.perf_counter()
        sb = Sandbox(spec)
        sb.create()
        created = (time.perf_counter() - t0) * 1000
        sb.start(background=False)
        sb.wait()
        sb.destroy()
        totals.append((time.perf_counter() - t0) * 1000)
        steps.setdefault("create() in the parent", []).append(created)
        previous = 0.0
        for step, at in sb.trace:
            steps.setdefault(step, []).append(at - previous)
            previous = at
    for step, values in steps.items():
        print(f"{step:45s} {statistics.median(values):7.3f} ms")
    print(f"{'total (create .. destroy)':45s} {statistics.median(totals):7.3f} ms")


def main() -> int:
    parser = ScratchParser(TMP, description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="runs through the API (peers run fewer)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--trace", action="store_true",
                        help="only the api, with the median milliseconds of each setup step")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("startup.py: needs root (containers, cgroups)", file=sys.stderr)
        shutil.rmtree(TMP, ignore_errors=True)
        return 2
    cleanup: list[list[str]] = []
    before = peer_cgroups()
    try:
        machine_facts()
        rootfs = images.get("busybox").layers[0]
        if args.trace:
            trace_steps(args.n)
            return 0
        rows = [("api", args.n, measure(api(), args.n, args.warmup))]
        for name, call, runs in peers(rootfs, args.n, cleanup):
            rows.append((name, runs, measure(call, runs, args.warmup)))
        limited, unlimited = limits_overhead(args.n, args.warmup)
        rows += [("api, every limit set", args.n, limited), ("api, Limits.unlimited()", args.n, unlimited)]
        report(rows)
        cost = statistics.median(limited) - statistics.median(unlimited)
        print(f"\nlimits cost {cost:+.2f} ms median (target: at most 2 ms)")
    finally:
        for argv in cleanup:
            subprocess.run(argv, **QUIET)
        host_cgroups().remove_parents()
        remove_peer_cgroups(before)
        left = leftovers(before)
        shutil.rmtree(TMP, ignore_errors=True)
        if left:
            print(f"LEAK: {left}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
