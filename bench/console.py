"""The console's and the classes' costs, measured against the daemon's own floor.

    sudo python3 bench/console.py [-n 5] [--seconds 20] [--students 30]

Rows (medians over the runs, p90 where it says):

- class create, N students      ``POST /v1/classes`` until it answers (every sandbox started),
                                then until all N terminals show their shell's prompt
                                (targets: under 1.5 s for 30 on 2 cores, under 50 ms each)
- floor: N sandboxes            the same N sandboxes (image, limits, shell) started by the
                                engine in this process, with the class's thread pool (ratio)
- N terminals typing at 1/s     N terminal WebSockets each typing a command a second: the
                                daemon's CPU over that time, in cores (target: under 1 core),
                                and the echo's round trip
- job log at 10,000 lines/s     a job printing 10,000 timestamped lines a second for
                                ``--seconds``; its page in chromium (headless, Playwright):
                                the lag from print to screen, sampled every 200 ms
                                (target: under 1 s), and lines shown per second

A daemon of its own runs on a private socket and a loopback port, state under
a temp dir; everything is removed at the end. Figures go to bench/README.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="sandbox-bench-console-"))
os.environ["SANDBOX_STATE_DIR"] = str(TMP / "lib")
os.environ["SANDBOX_RUN_DIR"] = str(TMP / "run")
os.environ["SANDBOX_CGROUP_PARENT"] = "sandbox-bench"
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scratch import ScratchParser  # noqa: E402 - bench/

SOCKET = TMP / "d.sock"
CHROMIUM = "/usr/bin/chromium"
FLOOD = """\
name = "flood"
image = "host"
[[steps]]
name = "print"
run = '''python3 -u -c "
import sys, time
start = time.time(); n = 0
while time.time() - start < {seconds}:
    due = int((time.time() - start) * 10000)
    out = []
    while n < due:
        out.append('%.3f line %d' % (time.time(), n)); n += 1
    if out:
        sys.stdout.write(chr(10).join(out) + chr(10))
    time.sleep(0.005)
"'''
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("SANDBOX_HOST", None)
        self.env = env
        with open(TMP / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "sandbox", "daemon", "--socket", str(SOCKET),
                                          "--listen", f"tcp://127.0.0.1:{self.port}", "--jobs", "2"],
                                         env=env, stdout=log, stderr=log)
        from sandbox.client import Client

        self.client = Client(f"unix://{SOCKET}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.client.system.health()
                break
            except Exception:
                time.sleep(0.05)
        self.token = subprocess.run([sys.executable, "-m", "sandbox", "daemon", "token", "create",
                                     "--name", "bench", "--scope", "admin"], env=env, check=True,
                                    capture_output=True, text=True).stdout.strip()

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def class_body(name: str, students: int) -> dict:
    return {"name": name, "students": students, "image": "busybox", "ttl": "10m"}


async def prompts(port: int, room: dict, token_of=lambda s: s["token"]) -> None:
    """Until every student's terminal shows its prompt."""
    from websockets.asyncio.client import connect

    async def one(student: dict) -> None:
        url = f"ws://127.0.0.1:{port}/v1/classes/{room['name']}/students/{student['name']}/terminal"
        async with connect(url, additional_headers={"Authorization": f"Bearer {token_of(student)}"}) as ws:
            seen = b""
            while b"# " not in seen:
                seen += await ws.recv()

    await asyncio.gather(*(one(s) for s in room["students"]))


def bench_create(daemon: Daemon, students: int, runs: int) -> None:
    made, ready, floor = [], [], []
    for i in range(runs):
        t0 = time.perf_counter()
        room = daemon.client.classes.create(class_body(f"b{i}", students))
        t1 = time.perf_counter()
        asyncio.run(prompts(daemon.port, room))
        t2 = time.perf_counter()
        made.append((t1 - t0) * 1000)
        ready.append((t2 - t0) * 1000)
        daemon.client.classes.remove(room["name"])
        floor.append(engine_floor(students))
    m, r, f = statistics.median(made), statistics.median(ready), statistics.median(floor)
    print(f"class create, {students} students: answered {m:7.0f} ms ({m / students:5.1f} ms each), "
          f"all prompts {r:7.0f} ms ({r / students:5.1f} ms each)")
    print(f"floor: {students} sandboxes in-process      {f:7.0f} ms ({f / students:5.1f} ms each); "
          f"class/floor {m / f:4.2f}x")


def engine_floor(students: int) -> float:
    """The class's sandboxes started by the engine here, with the class's pool, then removed."""
    from concurrent.futures import ThreadPoolExecutor

    from sandbox import Sandbox
    from server.classes.spec import ClassSpec, student_spec
    from server.classes.table import STARTERS

    spec = ClassSpec(name="floor", students=students, image="busybox")
    boxes = [Sandbox(student_spec(spec, n, None), stdin_fd=None) for n in spec.student_names()]

    def start(box: Sandbox) -> None:
        box.create()
        box.start(background=True)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(STARTERS) as pool:
        list(pool.map(start, boxes))
    took = (time.perf_counter() - t0) * 1000
    for box in boxes:
        box.kill()
        box.wait()
        box.destroy()
    return took


async def typing(port: int, room: dict, seconds: float) -> list[float]:
    from websockets.asyncio.client import connect

    trips: list[float] = []

    async def one(student: dict) -> None:
        url = f"ws://127.0.0.1:{port}/v1/classes/{room['name']}/students/{student['name']}/terminal"
        async with connect(url, additional_headers={"Authorization": f"Bearer {student['token']}"}) as ws:
            seen = b""
            end = time.monotonic() + seconds
            n = 0
            while time.monotonic() < end:
                n += 1
                marker = f"k{n}x".encode()
                t0 = time.perf_counter()
                await ws.send(f"echo {marker.decode()}\n")
                while marker + b"\n" not in seen:
                    seen += await ws.recv()
                trips.append((time.perf_counter() - t0) * 1000)
                seen = b""
                await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))

    await asyncio.gather(*(one(s) for s in room["students"]))
    return trips


def bench_typing(daemon: Daemon, students: int, seconds: float) -> None:
    room = daemon.client.classes.create(class_body("typing", students))
    try:
        asyncio.run(prompts(daemon.port, room))
        cpu0, t0 = daemon.cpu_seconds(), time.monotonic()
        trips = asyncio.run(typing(daemon.port, room, seconds))
        cores = (daemon.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    finally:
        daemon.client.classes.remove(room["name"])
    trips.sort()
    print(f"{students} terminals typing at 1/s for {seconds:.0f}s: daemon {cores:4.2f} cores; "
          f"echo round trip median {statistics.median(trips):5.1f} ms, p90 {trips[int(len(trips) * 0.9)]:5.1f} ms")


def bench_log(daemon: Daemon, seconds: float) -> None:
    from playwright.sync_api import sync_playwright

    from sandbox.client import Client

    client = Client(f"unix://{SOCKET}")  # a fresh connection: the kept one may have idled out
    job_id = client.jobs.submit("flood.toml", FLOOD.format(seconds=seconds).encode())["jobs"][0]["id"]
    client.close()
    base = f"http://127.0.0.1:{daemon.port}"
    lags: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/console/login#{daemon.token}")
        page.wait_for_url(f"{base}/console/")
        page.goto(f"{base}/console/jobs/{job_id}")
        last_count = 0
        t_start = time.monotonic()
        while not page.locator("#log-end").count() and time.monotonic() - t_start < seconds + 120:
            sample = page.evaluate("""() => {
                const rows = document.querySelectorAll('#log .l .t');
                const last = rows.length ? rows[rows.length - 1].textContent : '';
                return [Date.now() / 1000, last, rows.length];
            }""")
            now, text, count = sample
            if text and text.split(" ")[0].replace(".", "").isdigit():
                lags.append(now - float(text.split(" ")[0]))
            last_count = count
            time.sleep(0.2)
        took = time.monotonic() - t_start
        browser.close()
    lags.sort()
    print(f"job log at 10,000 lines/s for {seconds:.0f}s: lag print->screen median {statistics.median(lags):5.2f} s, "
          f"p90 {lags[int(len(lags) * 0.9)]:5.2f} s, max {lags[-1]:5.2f} s; {last_count} lines shown, "
          f"{last_count / took:7.0f} lines/s")


def main() -> None:
    parser = ScratchParser(TMP, description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=5, help="class creations to time")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20, help="typing and flooding time")
    parser.add_argument("--only", choices=("create", "typing", "log"), help="one row only")
    args = parser.parse_args()
    daemon = Daemon()
    try:
        if args.only in (None, "create"):
            bench_create(daemon, args.students, args.n)
        if args.only in (None, "typing"):
            bench_typing(daemon, args.students, args.seconds)
        if args.only not in (None, "log"):
            pass
        elif os.path.exists(CHROMIUM):
            bench_log(daemon, args.seconds)
        else:
            print(f"job log: skipped ({CHROMIUM} is not installed)")
    finally:
        daemon.stop()
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
