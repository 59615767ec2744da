"""Interactive sandboxes: a shell's first prompt on its terminal, and exec, against runc.

    sudo python3 bench/interactive.py [-n 100]

What is measured, per call, wall time:

- prompt, api               ``spawn(SandboxSpec(image="busybox", command=["sh"]))`` in this
                            process, until the shell's prompt ``/ # `` has come from its
                            terminal: the engine's start (as ``api`` in startup.py: overlay,
                            namespaces, cgroup) plus the pty made inside the sandbox, its
                            master sent back, the shell forked on it as a session leader,
                            and the shell's own start. The sandbox is torn down after the
                            clock stops. Target: median under 30 ms.
  (start, api)              the part of it until ``spawn`` returned (the master came back).
- prompt, cli               ``sandbox run -it busybox sh`` on a pty of this bench's, to the
                            prompt: the interpreter's start and imports, the supervisor
                            process, the attach, then the same. For reference.
- exec true, api            ``exec_into(ID, ["true"]).run()`` into a running sandbox (a
                            supervised ``sleep``: this process stays single-threaded and
                            forks the exec itself, as `sandbox exec` does), to its exit.
- exec true, runc           ``runc exec ID true`` into a running runc container of the same
                            busybox rootfs (``runc run --detach``, no terminal), to its exit.
                            Alternated run by run with the line above.
- exec true, cli            ``sandbox exec ID true``: the interpreter's start on top.

Everything lives under one temp dir (state, run dir, runc's root and bundle) and the
cgroup parent ``sandbox-bench``; it is removed at the end, also after an error.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
os.environ["SANDBOX_STATE_DIR"] = str(TMP / "lib")
os.environ["SANDBOX_RUN_DIR"] = str(TMP / "run")
os.environ["SANDBOX_CGROUP_PARENT"] = "sandbox-bench"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratch import ScratchParser  # noqa: E402 - bench/

from sandbox import SandboxSpec, SupervisorOptions, exec_into, images, remove_sandbox, run_detached, spawn  # noqa: E402
from sandbox.cgroups import host_cgroups  # noqa: E402

PROMPT = b"/ # "
QUIET = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}


def ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def prompt_api() -> tuple[float, float]:
    """(milliseconds to the prompt, of which until spawn returned)."""
    t0 = time.perf_counter()
    shell = spawn(SandboxSpec(image="busybox", command=["sh"]))
    started = ms(t0)
    try:
        shell.expect_exact(PROMPT)
        return ms(t0), started
    finally:
        shell.close()


def cli() -> str:
    script = Path(sys.executable).parent / "sandbox"
    return str(script) if script.exists() else (shutil.which("sandbox") or "")


def prompt_cli(command: str) -> float:
    """`sandbox run -it busybox sh` on a pty of ours, to its prompt; then `exit`."""
    t0 = time.perf_counter()
    pid, master = pty.fork()
    if pid == 0:
        os.execv(command, [command, "run", "-it", "busybox", "sh"])
    seen = b""
    try:
        while PROMPT not in seen:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                raise RuntimeError(f"no prompt from the cli within 30 s: {seen[-200:]!r}")
            seen += os.read(master, 65536)
        took = ms(t0)
        os.write(master, b"exit\r")
        while True:  # read to the end: the client exits when the shell has
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        return took
    finally:
        os.waitpid(pid, 0)
        os.close(master)


def runc_container(rootfs: str) -> tuple[list[str], str]:
    """A running runc container (`sleep 1000`, no terminal) of the rootfs: (runc argv, id)."""
    bundle = TMP / "runc-bundle"
    bundle.mkdir()
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(bundle / "rootfs"), "readonly": True}
    config["process"].update(args=["sleep", "1000"], terminal=False)
    (bundle / "config.json").write_text(json.dumps(config))
    runc = ["runc", "--root", str(TMP / "runc-state")]
    name = f"bench-{os.getpid()}"
    # the container keeps runc's stdio: none of them may be a pipe we would wait on
    subprocess.run([*runc, "run", "--detach", "--bundle", str(bundle), name], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return runc, name


def run_checked(argv: list[str]) -> None:
    proc = subprocess.run(argv, **QUIET)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()}")


def exec_api(sandbox_id: str) -> None:
    result = exec_into(sandbox_id, ["true"]).run()
    if result.exit_code != 0:
        raise RuntimeError(f"exec exited {result.exit_code}: {result.stderr!r}")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return ms(t0)


def row(name: str, times: list[float], base: float | None = None) -> None:
    med = statistics.median(times)
    p90 = sorted(times)[min(len(times) - 1, int(0.9 * len(times)))]
    ratio = f"{med / base:8.2f}" if base else " " * 8
    print(f"{name:<24}{len(times):>6}{med:>11.2f}{p90:>9.2f}{ratio}")


def bench_prompt(n: int, warmup: int, command: str) -> None:
    for _ in range(warmup):
        prompt_api()
    results = [prompt_api() for _ in range(n)]
    print(f"\n{'name':<24}{'runs':>6}{'median ms':>11}{'p90 ms':>9}{'x api':>8}")
    totals = [r[0] for r in results]
    row("prompt, api", totals, statistics.median(totals))
    row("  (start, api)", [r[1] for r in results])
    if command:
        prompt_cli(command)
        row("prompt, cli", [prompt_cli(command) for _ in range(max(5, n // 10))],
            statistics.median(totals))
    print(f"\nfirst prompt in-process: {statistics.median(totals):.2f} ms median (target: under 30 ms)")


def bench_exec(n: int, warmup: int, command: str, rootfs: str) -> list[str]:
    """Exec into our running sandbox and runc's, alternated; the cleanup commands."""
    cleanup = []
    sandbox_id = run_detached(SandboxSpec(image="busybox", command=["sleep", "1000"]),
                              SupervisorOptions()).id
    cleanup.append(["sandbox-rm", sandbox_id])
    runc = None
    if shutil.which("runc"):
        runc, name = runc_container(rootfs)
        cleanup.append([*runc, "delete", "--force", name])
    else:
        print("skip runc: not installed (apt-get install runc)")
    ours, theirs = [], []
    for i in range(warmup + n):
        a = timed(lambda: exec_api(sandbox_id))
        b = timed(lambda: run_checked([*runc, "exec", name, "true"])) if runc else None
        if i >= warmup:
            ours.append(a)
            if b is not None:
                theirs.append(b)
    print(f"\n{'name':<24}{'runs':>6}{'median ms':>11}{'p90 ms':>9}{'x api':>8}")
    base = statistics.median(ours)
    row("exec true, api", ours, base)
    if theirs:
        row("exec true, runc", theirs, base)
    if command:
        row("exec true, cli", [timed(lambda: run_checked([command, "exec", sandbox_id, "true"]))
                               for _ in range(max(5, n // 10))], base)
    return cleanup


def main() -> int:
    parser = ScratchParser(TMP, description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100, help="runs through the API (the cli: fewer)")
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("interactive.py: needs root (containers, cgroups)", file=sys.stderr)
        shutil.rmtree(TMP, ignore_errors=True)
        return 2
    cleanup: list[list[str]] = []
    try:
        print(f"kernel {os.uname().release}, nproc {os.cpu_count()}, python {sys.version.split()[0]}")
        rootfs = images.get("busybox").layers[0]
        command = cli()
        if not command:
            print("skip cli: no `sandbox` console script (pip install -e .)")
        cleanup = bench_exec(args.n, args.warmup, command, rootfs)  # single-threaded: first
        bench_prompt(args.n, args.warmup, command)
    finally:
        for argv in cleanup:
            if argv[0] == "sandbox-rm":
                remove_sandbox(argv[1], force=True)
            else:
                subprocess.run(argv, **QUIET)
        host_cgroups().remove_parents()
        mounts = Path("/proc/self/mountinfo").read_text()
        left = [line for line in mounts.splitlines() if str(TMP) in line]
        shutil.rmtree(TMP, ignore_errors=True)
        if left:
            print(f"LEAK: {left}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
