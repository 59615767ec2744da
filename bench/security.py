"""What the walls cost: start, run and tear down `true` with seccomp and user namespaces on and off.

    sudo python3 bench/security.py [-n 100]

Rows, each ``run(SandboxSpec(...))`` in this process (the steady state: the
zygote's spares) unless named otherwise, all alternated run by run so the
host's drift hits every row alike:

- off                   seccomp="unconfined", userns="host": no filter, no user namespace
- seccomp               the default: Docker's default profile (compiled once, loaded last)
- userns                userns="auto", no filter: the namespace made, the image idmapped
- seccomp + userns      both
- host image, off / seccomp + userns: the same on the ``host`` image, whose every host
                        dir is an overlay of its own (eleven idmapped mounts with userns)
- runc, default profile ``runc run`` of a bundle on the same busybox rootfs whose config
                        carries Docker's default profile (as ``docker run`` hands it to
                        runc), and ``runc, unconfined`` without it

Prints medians, p90 and the difference of each row's median from "off" (the
targets: seccomp under 0.5 ms, userns under 1 ms). With ``--steps`` the
containers trace their setup (SANDBOX_TRACE=1) and each row's median time of
the steps that differ between rows is printed too: on a loaded machine the
seccomp(2) call's own time says more than a difference of two medians. Needs root and a sandbox
entry in /etc/subuid and /etc/subgid; leaves nothing behind (its state, run
and runc dirs live in one temp dir, removed at the end).
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

TMP = Path(tempfile.mkdtemp(prefix="sandbox-bench-security-"))
os.environ["SANDBOX_STATE_DIR"] = str(TMP / "lib")
os.environ["SANDBOX_RUN_DIR"] = str(TMP / "run")
os.environ["SANDBOX_CGROUP_PARENT"] = "sandbox-bench"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratch import ScratchParser  # noqa: E402 - bench/

from sandbox import Sandbox, SandboxSpec, images  # noqa: E402
from sandbox.cgroups import host_cgroups  # noqa: E402
from sandbox.linux.caps import mask  # noqa: E402
from sandbox.security import filters, profile  # noqa: E402
from sandbox.spec import DEFAULT_CAPABILITIES  # noqa: E402

MODES = {
    "off": {"seccomp": "unconfined", "userns": "host"},
    "seccomp": {},
    "userns": {"seccomp": "unconfined", "userns": "auto"},
    "seccomp + userns": {"userns": "auto"},
}


#: The setup steps ``--steps`` reports (each one's time since the step before it), each
#: the start of a traced step's name (the user namespace's steps go on with its range).
STEPS = ("make the user namespace", "reap the user namespace's helper", "become the user",
         "load the seccomp filter", "command started")
#: Row name -> step -> its times (ms), with --steps.
STEP_TIMES: dict[str, dict[str, list[float]]] = {}


def api(image: str, options: dict, name: str):
    spec = SandboxSpec(image=image, command=["true"], **options)

    def call() -> None:
        box = Sandbox(spec)  # what run(spec) does, keeping the sandbox for its trace
        result = box.run()
        if result.exit_code != 0:
            raise RuntimeError(f"{image} {options} exited {result.exit_code}: {result.stderr!r}")
        last = 0.0
        for step, at in box.trace:
            shown = next((s for s in STEPS if step.startswith(s)), None)
            if shown is not None:
                STEP_TIMES.setdefault(name, {}).setdefault(shown, []).append(at - last)
            last = at
    return call


def runc_bundle(rootfs: str, seccomp: bool) -> Path:
    """`runc spec`, then: the rootfs, `true`, no tty, Docker's capabilities, and the
    default profile resolved for them (``profile.to_oci``) when ``seccomp``."""
    bundle = TMP / f"runc-bundle-{int(seccomp)}"
    bundle.mkdir()
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(bundle / "rootfs"), "readonly": True}
    caps = [f"CAP_{c}" for c in DEFAULT_CAPABILITIES]
    config["process"].update(args=["true"], terminal=False, noNewPrivileges=True,
                             capabilities=dict.fromkeys(("bounding", "effective", "permitted"), caps))
    if seccomp:
        resolved = profile.resolve(profile.load("default"),
                                   filters.capability_names(mask(DEFAULT_CAPABILITIES)))
        config["linux"]["seccomp"] = profile.to_oci(resolved)
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def runc_call(bundle: Path):
    state = str(TMP / "runc-state")

    def call() -> None:
        argv = ["runc", "--root", state, "run", "--bundle", str(bundle), f"bench-{uuid.uuid4().hex[:12]}"]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"runc exited {proc.returncode}: {proc.stderr.decode().strip()}")
    return call


def rows(n: int) -> list[tuple[str, object, int]]:
    found: list[tuple[str, object, int]] = [(name, api("busybox", opts, name), n)
                                            for name, opts in MODES.items()]
    found += [(name, api("host", MODES[mode], name), n)
              for name, mode in (("host image, off", "off"),
                                 ("host image, seccomp + userns", "seccomp + userns"))]
    if shutil.which("runc"):
        rootfs = images.get("busybox").layers[0]
        found += [("runc, default profile", runc_call(runc_bundle(rootfs, True)), max(10, n // 4)),
                  ("runc, unconfined", runc_call(runc_bundle(rootfs, False)), max(10, n // 4))]
    else:
        print("skip runc: not installed")
    return found


def measure(found: list[tuple[str, object, int]]) -> dict[str, list[float]]:
    """Every row once per round, round after round, after a warm-up round."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in found}
    for _, call, _ in found:
        call()
    for i in range(max(runs for _, _, runs in found)):
        for name, call, runs in found:
            if i < runs:
                t0 = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - t0) * 1000)
    return times


def report(times: dict[str, list[float]]) -> None:
    base = {"host": statistics.median(times["host image, off"]), "": statistics.median(times["off"])}
    print(f"{'what':32} {'runs':>5} {'median ms':>10} {'p90 ms':>8} {'vs off':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = sorted(values)[min(len(values) - 1, int(0.9 * len(values)))]
        ref = base["host"] if name.startswith("host") else base[""]
        print(f"{name:32} {len(values):5} {median:10.2f} {p90:8.2f} {median - ref:+8.2f}")
    if STEP_TIMES:
        print(f"\nsetup steps in the container, median ms (since the step before)\n{'what':32} "
              + " ".join(f"{step[:24]:>24}" for step in STEPS))
        for name, steps in STEP_TIMES.items():
            cells = (f"{statistics.median(steps[s]):24.3f}" if s in steps else f"{'-':>24}" for s in STEPS)
            print(f"{name:32} " + " ".join(cells))


def runc_cgroups() -> set[str]:
    """The cgroups runc made for this bench's containers (named bench-...)."""
    return {str(d) for mount in Path("/sys/fs/cgroup").iterdir() for d in mount.glob("bench-*")}


def main() -> int:
    parser = ScratchParser(TMP, description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="runs per API row (runc: n/4)")
    parser.add_argument("--steps", action="store_true",
                        help="also the median time of the container's setup steps (SANDBOX_TRACE=1)")
    args = parser.parse_args()
    if args.steps:
        os.environ["SANDBOX_TRACE"] = "1"
    if os.geteuid() != 0:
        print("security.py: needs root (containers, cgroups)", file=sys.stderr)
        shutil.rmtree(TMP, ignore_errors=True)
        return 2
    before = runc_cgroups()
    try:
        print(f"kernel {os.uname().release}, nproc {os.cpu_count()}, python {sys.version.split()[0]}")
        report(measure(rows(args.n)))
    finally:
        host_cgroups().remove_parents()
        for path in sorted(runc_cgroups() - before, key=len, reverse=True):
            try:
                os.rmdir(path)  # runc removes them on exit; never kill
            except OSError:
                pass
        shutil.rmtree(TMP, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
