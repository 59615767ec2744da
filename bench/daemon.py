"""The daemon's costs, against their floors measured in the same run.

    sudo python3 bench/daemon.py [-n 30]

Rows, alternated run by run (medians and p90 in ms, and each ratio to its floor):

- python3 -c pass           the floor of any Python command
- cli via daemon            ``sandbox run busybox -- true`` with SANDBOX_HOST on the daemon's
                            socket: the whole CLI process (target: at most 1.3x the floor)
- cli embedded              the same without SANDBOX_HOST (for reference)
- api in-process            ``Sandbox(spec).run()`` in this process (the floor of the next)
- http create..delete       ``POST /v1/sandboxes`` + start + wait + delete from a Python
                            client (``sandbox.client`` on the socket; target: within 1.5x)
- http floor (bare FastAPI) the same four requests, same client, to bench/daemon_floor.py:
                            FastAPI on uvicorn around the engine with nothing of ours (no
                            auth, models or log buffers): what the framework alone costs
- submit -> first SSE line  ``POST /v1/jobs`` to the first `out` event of its SSE log
                            (target: under 30 ms)

With ``--plain-install``, two more rows: this checkout installed (not editable) in a
venv of its own, as a user's install is: ``python -c pass`` there, and the ``sandbox``
command there through the daemon. The first rows' python3 runs this host's site-packages,
whose .pth files (an editable install's finder, a CA bundle's hook) import a good part of
what the CLI needs before it starts: their floor is higher and the CLI's own cost hidden.

A daemon of its own runs on a private socket, state under a temp dir; all of it is
removed at the end. The Python processes run with bytecode caching on whatever
PYTHONDONTWRITEBYTECODE says, as an installed package runs (pip compiles it): the
warm-up runs write the checkout's caches, so no row pays for compiling sources.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="sandbox-bench-daemon-"))
os.environ["SANDBOX_STATE_DIR"] = str(TMP / "lib")
os.environ["SANDBOX_RUN_DIR"] = str(TMP / "run")
os.environ["SANDBOX_CGROUP_PARENT"] = "sandbox-bench"
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scratch import ScratchParser  # noqa: E402 - bench/

SOCKET = TMP / "d.sock"
FLOOR_SOCKET = TMP / "floor.sock"
JOB = b'name = "b"\nimage = "busybox"\n[[steps]]\nname = "s"\nrun = "echo first"\n'


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def python_env(**extra: str) -> dict[str, str]:
    """The environment of the Python processes measured (bytecode cached: see above)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def plain_install() -> Path:
    """A venv of its own with the ``sandbox`` package in its site-packages as a wheel puts it
    (the client needs no other package) and the console script pip would write."""
    venv = TMP / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    shutil.copytree(REPO / "sandbox", site / "sandbox",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = venv / "bin" / "sandbox"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom sandbox.cli import entry\n"
                      "sys.exit(entry())\n")
    script.chmod(0o755)
    return venv


def run_cli(host: bool) -> None:
    env = python_env(PYTHONPATH=str(REPO))
    env.pop("SANDBOX_HOST", None)
    if host:
        env["SANDBOX_HOST"] = f"unix://{SOCKET}"
    subprocess.run([sys.executable, "-m", "sandbox", "run", "busybox", "--", "true"], env=env,
                   check=True)


def http_roundtrip(client) -> None:
    created = client.sandboxes.create({"image": "busybox", "command": ["true"]})
    client.sandboxes.start(created["id"])
    client.sandboxes.wait(created["id"])
    client.sandboxes.remove(created["id"])


def first_line(client) -> float:
    from sandbox.client.transport import iter_sse

    t0 = time.perf_counter()
    job_id = client.jobs.submit("b.toml", JOB)["jobs"][0]["id"]
    response = client.jobs.log(job_id)
    try:
        for event, _ident, _data in iter_sse(response):
            if event == "out":
                return (time.perf_counter() - t0) * 1000
    finally:
        response.close()
    raise RuntimeError("no output event")


def start_daemon(argv: list[str] | None = None, socket: Path = SOCKET) -> subprocess.Popen:
    """`sandbox daemon` on ``socket`` (or the Python script ``argv`` that listens there)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = argv or ["-m", "sandbox", "daemon", "--socket", str(socket)]
    proc = subprocess.Popen([sys.executable, *argv], env=env)
    for _ in range(600):
        if socket.exists():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{' '.join(argv)} did not listen on {socket}")


def report(rows: dict[str, list[float]], floors: dict[str, str]) -> None:
    print(f"{'row':26} {'runs':>5} {'median':>8} {'p90':>8}  ratio")
    medians = {k: statistics.median(v) for k, v in rows.items()}
    for name, values in rows.items():
        p90 = sorted(values)[int(len(values) * 0.9) - 1]
        floor = floors.get(name)
        ratio = f"{medians[name] / medians[floor]:.2f}x {floor}" if floor else ""
        print(f"{name:26} {len(values):5} {medians[name]:8.1f} {p90:8.1f}  {ratio}")


def main() -> None:
    parser = ScratchParser(TMP, description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--plain-install", action="store_true",
                        help="also the floor and the CLI in a venv with this checkout pip-installed")
    parser.add_argument("--http-only", action="store_true",
                        help="only the in-process API and the two HTTP rows, back to back (no "
                        "process started between them: a steady loop, where caches stay warm)")
    args = parser.parse_args()
    from sandbox import Sandbox, SandboxSpec
    from sandbox.client import Client

    servers: list[subprocess.Popen] = []
    try:
        servers.append(start_daemon())
        servers.append(start_daemon([str(REPO / "bench" / "daemon_floor.py"), str(FLOOR_SOCKET)],
                                    FLOOR_SOCKET))
        client = Client(f"unix://{SOCKET}")
        floor_client = Client(f"unix://{FLOOR_SOCKET}")
        spec = SandboxSpec(image="busybox", command=("true",))
        for _ in range(3):  # warm up: busybox made, zygotes started, imports cached
            run_cli(True), run_cli(False), http_roundtrip(client), Sandbox(spec).run()
            http_roundtrip(floor_client)
        rows: dict[str, list[float]] = {k: [] for k in (
            "python3 -c pass", "cli via daemon", "cli embedded", "api in-process",
            "http create..delete", "http floor (bare FastAPI)", "submit -> first SSE line")}
        plain: list[tuple[str, list[str]]] = []
        if args.plain_install:
            venv = plain_install()
            env = {k: v for k, v in python_env().items() if k != "PYTHONPATH"}
            env["SANDBOX_HOST"] = f"unix://{SOCKET}"
            plain = [("venv python -c pass", [str(venv / "bin" / "python"), "-c", "pass"]),
                     ("venv sandbox via daemon", [str(venv / "bin" / "sandbox"), "run", "busybox",
                                                  "--", "true"])]
            for _name, argv in plain * 3:  # warm up: bytecode caches written
                subprocess.run(argv, env=env, check=True)
            rows.update({name: [] for name, _ in plain})
        if args.http_only:
            rows = {k: v for k, v in rows.items() if k.startswith(("api", "http", "venv"))}
        for _ in range(args.n):
            if not args.http_only:
                rows["python3 -c pass"].append(timed(lambda: subprocess.run(
                    [sys.executable, "-c", "pass"], env=python_env())))
                rows["cli via daemon"].append(timed(lambda: run_cli(True)))
                rows["cli embedded"].append(timed(lambda: run_cli(False)))
            rows["api in-process"].append(timed(lambda: Sandbox(spec).run()))
            rows["http create..delete"].append(timed(lambda: http_roundtrip(client)))
            rows["http floor (bare FastAPI)"].append(timed(lambda: http_roundtrip(floor_client)))
            if not args.http_only:
                rows["submit -> first SSE line"].append(first_line(client))
            for name, argv in plain:
                rows[name].append(timed(lambda argv=argv: subprocess.run(argv, env=env, check=True)))
        report(rows, {"cli via daemon": "python3 -c pass", "cli embedded": "python3 -c pass",
                      "http create..delete": "api in-process",
                      "http floor (bare FastAPI)": "api in-process",
                      "venv sandbox via daemon": "venv python -c pass"})
        print(json.dumps({"targets": {"cli via daemon": "<= 1.3x", "http create..delete": "<= 1.5x",
                                      "submit -> first SSE line": "< 30 ms"}}))
        client.close()
        floor_client.close()
    finally:  # also when one of them did not start
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
        for proc in servers:
            proc.wait(60)
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
