"""Bridge networking cost per sandbox, against podman's default bridge network.

Prints medians of `true` run end to end through the API (create, start,
wait, destroy) with --network none and bridge, the difference (what a
bridge attachment costs), and `podman --runtime runc run --rm` with its
default network, measured in the same run. Needs root. Uses its own state
directory and bridge (sbxbench), removed at the end.

    python3 bench/network.py [-n 50] [--podman-runs 10]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = tempfile.mkdtemp(prefix="sandbox-bench-net-")
os.environ.update(SANDBOX_STATE_DIR=f"{ROOT}/lib", SANDBOX_RUN_DIR=f"{ROOT}/run",
                  SANDBOX_BRIDGE="sbxbench", SANDBOX_CGROUP_PARENT=f"sandbox-bench-{os.getpid()}")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scratch import ScratchParser  # noqa: E402 - bench/

from sandbox import NetworkSpec, SandboxSpec, run  # noqa: E402

PODMAN_IMAGE = "localhost/sandbox-bench-busybox:latest"


def time_runs(network: str, n: int) -> list[float]:
    spec = SandboxSpec(image="busybox", command=["true"], network=NetworkSpec(network))
    run(spec, log_file=False)  # warm up: image, bridge, imports
    times = []
    for _ in range(n):
        start = time.perf_counter()
        result = run(spec, log_file=False)
        times.append(time.perf_counter() - start)
        assert result.exit_code == 0, result
    return times


def podman_image() -> bool:
    """Import the busybox rootfs into podman (no registry access here)."""
    from sandbox.images import get

    rootfs = get("busybox").layers[0]
    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
        with tarfile.open(tmp.name, "w") as tar:
            tar.add(rootfs, arcname=".")
        proc = subprocess.run(["podman", "import", tmp.name, PODMAN_IMAGE], capture_output=True)
    return proc.returncode == 0


def time_podman(n: int) -> list[float] | None:
    if not shutil.which("podman") or not podman_image():
        return None
    cmd = ["podman", "--runtime", "runc", "run", "--rm", "--ulimit", "nofile=1024:1024",
           "--ulimit", "nproc=1024:1024", PODMAN_IMAGE, "true"]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> None:
    parser = ScratchParser(ROOT, description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--podman-runs", type=int, default=10)
    args = parser.parse_args()
    if args.n < 1 or args.podman_runs < 0:
        parser.error("-n must be at least 1 and --podman-runs at least 0")
    try:
        none = statistics.median(time_runs("none", args.n))
        bridge = statistics.median(time_runs("bridge", args.n))
        print(f"sandbox --network none     true: median {ms(none)}  (n={args.n})")
        print(f"sandbox --network bridge   true: median {ms(bridge)}  (n={args.n})")
        print(f"bridge setup + teardown per sandbox: {ms(bridge - none)}")
        podman = time_podman(args.podman_runs) if args.podman_runs else None
        if podman is None:
            print("podman: not run (not installed, could not run here, or --podman-runs 0)")
            return
        p = statistics.median(podman)
        print(f"podman --runtime runc run --rm (default network) true: median {ms(p)}"
              f"  (n={args.podman_runs})")
        print(f"ratio podman / sandbox bridge: {p / bridge:.1f}x")
    finally:
        from sandbox.cgroups import host_cgroups
        from sandbox.network import remove_network

        remove_network("bridge")
        host_cgroups().remove_parents()  # this run's SANDBOX_CGROUP_PARENT
        subprocess.run(["podman", "rmi", "-f", PODMAN_IMAGE], capture_output=True)
        shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
