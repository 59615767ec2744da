"""Benchmark: trivial sandboxed jobs through the queue vs bare RQ no-op jobs.

Everything runs in this one invocation against one private redis-server, with
the same number of worker processes on each side:

- bare RQ: no-op jobs (``os.getpid``, JSON serializer) through SimpleWorker,
  and through RQ's default forking Worker (the worker class choice);
- ours: trivial jobs (busybox ``echo hi``) submitted with jobs.submit and run by
  ``sandbox worker`` (SimpleWorker + a sandbox per step).

It prints throughput (jobs/s) and its ratio to bare RQ, the median latency
from submit to the first log event and to the first output line at a client
following the job, and where the CPU of one job goes (/proc: the workers, the
sandboxes' zygotes with the containers they reaped, redis-server, this
client, and the whole machine), which is what limits throughput on a small
host.

Then, through one worker, alternated run by run:

- services: submit -> the first step's first output line of a job with one
  Redis service from the host image (``ready = "redis-cli ping"``) and of the
  same job without it; the difference is the service's start (the job's
  network, the sandbox, its readiness) and teardown is not in it;
- caches: the duration of a job that installs a small requirements file
  with pip into /workspace (examples/redis-app/install-deps.sh: wheels from
  the job's cache, else downloaded) on a cache hit and on a miss (a fresh
  key each time). It needs PyPI (egress): skipped, saying so, without it.

    python3 bench/jobs.py [--workers 2] [--jobs 200] [--latency-runs 30]
                          [--service-runs 15] [--pip-runs 5] [--only-pipelines]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from proc_cpu import children_named, cpu_seconds, machine_busy_seconds  # noqa: E402 - bench/

RQ_WORKER = """
import sys
from redis import Redis
from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer
cls = {"simple": SimpleWorker, "fork": Worker}[sys.argv[2]]
cls([sys.argv[3]], connection=Redis.from_url(sys.argv[1]), serializer=JSONSerializer).work(logging_level="WARNING")
"""
TRIVIAL = 'name = "trivial"\nimage = "busybox"\n[[steps]]\nname = "echo"\nrun = "echo hi"\n'
WITH_SERVICE = """name = "with redis"
image = "host"
[services.redis]
command = "redis-server --save '' --appendonly no --protected-mode no"
ready = "redis-cli ping"
[[steps]]
name = "echo"
run = "echo hi"
"""
WITHOUT_SERVICE = 'name = "without"\nimage = "host"\n[[steps]]\nname = "echo"\nrun = "echo hi"\n'
PIP = """name = "pip install"
image = "host"
workspace = "ws"
[params]
SALT = "warm"
[cache]
key = "wheels-{hash:requirements.txt}-{env:SALT}"
paths = ["/root/.cache/wheels"]
[[steps]]
name = "deps"
egress = true
run = "./install-deps.sh"
"""
REQUIREMENTS = "six\nidna\nattrs\n"


def start_workers(cmd: list[str], n: int, env: dict[str, str]) -> list[subprocess.Popen]:
    return [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class CpuMeter:
    """CPU milliseconds per job, by who spent them, over one throughput run."""

    def __init__(self, server_pid: int, workers: list[subprocess.Popen]) -> None:
        self.groups = {"workers": [p.pid for p in workers], "redis": [server_pid]}
        zygotes = [z for p in workers for z in children_named("sandbox-zygote", p.pid)]
        if zygotes:  # self and reaped children: the spares and inits they forked
            self.groups["zygotes+containers"] = zygotes

    def __enter__(self) -> "CpuMeter":
        self.before = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        self.after = self._sample()

    def _sample(self) -> dict[str, float]:
        out = {name: sum(cpu_seconds(pid, children=name != "workers") for pid in pids)
               for name, pids in self.groups.items()}
        times = os.times()
        out["client"] = times.user + times.system
        out["whole machine"] = machine_busy_seconds()
        return out

    def per_job(self, jobs: int) -> str:
        return ", ".join(f"{name} {(self.after[name] - self.before[name]) * 1000 / jobs:.1f}"
                         for name in self.after)


def bare_rq(url: str, kind: str, workers: int, jobs: int, env: dict[str, str],
            server_pid: int) -> tuple[float, CpuMeter]:
    """(jobs/s, CPU) of no-op RQ jobs with ``workers`` RQ workers of one class."""
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    qname = f"bare-{kind}"
    conn = Redis.from_url(url)
    queue = Queue(qname, connection=conn, serializer=JSONSerializer)
    procs = start_workers([sys.executable, "-c", RQ_WORKER, url, kind, qname], workers, env)
    try:
        queue.enqueue("os.getpid").latest_result(timeout=30)  # workers are up
        with CpuMeter(server_pid, procs) as cpu:
            t0 = time.perf_counter()
            pending = [queue.enqueue("os.getpid") for _ in range(jobs)]
            while pending:  # poll gently: the workers share this machine's cores
                pending = [job for job in pending if job.get_status() != "finished"]
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
        return jobs / elapsed, cpu
    finally:
        stop(procs)


def ours(url: str, workers: int, jobs: int, runs: int, env: dict[str, str],
         server_pid: int) -> tuple[float, CpuMeter, list, list]:
    """(jobs/s, CPU, [submit->first event], [submit->first output]) for trivial sandboxed jobs."""
    import tomllib

    from jobs import connect, parse_job, submit, wait
    from jobs.logstream import follow

    spec = parse_job(tomllib.loads(TRIVIAL))[0]
    conn = connect(url)
    procs = start_workers([sys.executable, "-m", "sandbox", "worker", "--redis", url,
                           "--queue", "ours"], workers, env)
    try:
        wait(conn, submit(conn, spec, queue="ours"), timeout=60)  # workers are up, image made
        first_event, first_line = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            job_id = submit(conn, spec, queue="ours")
            events = follow(conn, job_id, timeout=60)
            next(events)
            first_event.append(time.perf_counter() - t0)
            if any(event.kind == "out" for event in events):
                first_line.append(time.perf_counter() - t0)
            wait(conn, job_id, timeout=60)
        with CpuMeter(server_pid, procs) as cpu:
            t0 = time.perf_counter()
            ids = [submit(conn, spec, queue="ours") for _ in range(jobs)]
            for job_id in ids:
                assert wait(conn, job_id, timeout=120).status == "passed"
            elapsed = time.perf_counter() - t0
        return jobs / elapsed, cpu, first_event, first_line
    finally:
        stop(procs)


def first_line(conn, spec, queue: str) -> float:
    """Seconds from submit to the first output line of a step, at a follower."""
    from jobs import submit, wait
    from jobs.logstream import follow

    t0 = time.perf_counter()
    job_id = submit(conn, spec, queue=queue)
    seen = None
    for event in follow(conn, job_id, timeout=120):
        if seen is None and event.kind == "out" and event.step:
            seen = time.perf_counter() - t0
    assert wait(conn, job_id, timeout=120).status == "passed"
    assert seen is not None
    return seen


def services(url: str, runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """([with a Redis service], [without]) submit -> first step line, alternated."""
    import tomllib

    from jobs import connect, parse_job

    with_service = parse_job(tomllib.loads(WITH_SERVICE))[0]
    plain = parse_job(tomllib.loads(WITHOUT_SERVICE))[0]
    conn = connect(url)
    procs = start_workers([sys.executable, "-m", "sandbox", "worker", "--redis", url,
                           "--queue", "services"], 1, env)
    try:
        first_line(conn, with_service, "services")  # the worker is up, the host image made
        first_line(conn, plain, "services")
        timed: tuple[list[float], list[float]] = ([], [])
        for i in range(2 * runs):
            spec = (with_service, plain)[i % 2]
            timed[i % 2].append(first_line(conn, spec, "services"))
        return timed
    finally:
        stop(procs)


def pip_cache(url: str, runs: int, env: dict[str, str], tmp: str) -> tuple[list[float], list[float]] | str:
    """([cache hits], [misses]) job durations, alternated; a reason when PyPI is unreachable."""
    import shutil
    import tomllib

    from jobs import connect, parse_job, submit, wait

    ws = os.path.join(tmp, "pip", "ws")
    os.makedirs(ws)
    shutil.copy(os.path.join(ROOT, "examples", "redis-app", "install-deps.sh"), ws)
    with open(os.path.join(ws, "requirements.txt"), "w") as f:
        f.write(REQUIREMENTS)
    data = tomllib.loads(PIP)
    conn = connect(url)
    procs = start_workers([sys.executable, "-m", "sandbox", "worker", "--redis", url,
                           "--queue", "pip"], 1, env)

    def duration(salt: str) -> float:
        (spec,) = parse_job(data, path=os.path.join(tmp, "pip", "job.toml"),
                            base_dir=os.path.join(tmp, "pip"), params={"SALT": salt})
        result = wait(conn, submit(conn, spec, queue="pip"), timeout=300)
        if result.status != "passed":
            raise RuntimeError(result.error or result.status)
        return result.duration

    try:
        try:
            duration("warm")  # the entry the hits restore
        except RuntimeError as exc:
            return f"skipped: the job could not install from PyPI ({exc})"
        timed: tuple[list[float], list[float]] = ([], [])
        for i in range(2 * runs):
            timed[i % 2].append(duration("warm" if i % 2 == 0 else f"miss{i}"))
        return timed
    finally:
        stop(procs)


def pipelines(url: str, args: argparse.Namespace, env: dict[str, str], tmp: str) -> None:
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    with_service, plain = services(url, args.service_runs, env)
    print(f"submit -> first step line, median of {args.service_runs}: with a Redis service "
          f"{ms(with_service):6.1f} ms, without {ms(plain):6.1f} ms, difference "
          f"{ms(with_service) - ms(plain):6.1f} ms, ratio {ms(with_service) / ms(plain):.2f}")
    timed = pip_cache(url, args.pip_runs, env, tmp)
    if isinstance(timed, str):
        print(f"pip install with a cache: {timed}")
        return
    hits, misses = timed
    print(f"pip install of {len(REQUIREMENTS.split())} requirements, job duration, median of "
          f"{args.pip_runs}: cache hit {ms(hits):7.1f} ms, miss (download) {ms(misses):7.1f} ms, "
          f"ratio {ms(hits) / ms(misses):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency-runs", type=int, default=30)
    parser.add_argument("--service-runs", type=int, default=15)
    parser.add_argument("--pip-runs", type=int, default=5)
    parser.add_argument("--only-pipelines", action="store_true",
                        help="only the services and caches figures (no throughput runs)")
    args = parser.parse_args()
    from jobs_support import RedisServer

    tmp = tempfile.mkdtemp(prefix="sandbox-bench-")
    env = {**os.environ, "PYTHONPATH": ROOT, "SANDBOX_STATE_DIR": f"{tmp}/lib",
           "SANDBOX_RUN_DIR": f"{tmp}/run", "SANDBOX_CGROUP_PARENT": "sandbox-bench"}
    os.environ.update(env)
    server = RedisServer().start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        if args.only_pipelines:
            pipelines(server.url, args, env, tmp)
            return
        simple, simple_cpu = bare_rq(server.url, "simple", args.workers, args.jobs, env, pid)
        fork, _ = bare_rq(server.url, "fork", args.workers, args.jobs, env, pid)
        ours_tput, ours_cpu, first_event, first_out = ours(server.url, args.workers, args.jobs,
                                                           args.latency_runs, env, pid)
        report(args, simple, simple_cpu, fork, ours_tput, ours_cpu, first_event, first_out)
        pipelines(server.url, args, env, tmp)
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", tmp])


def report(args: argparse.Namespace, simple: float, simple_cpu: CpuMeter, fork: float,
           ours_tput: float, ours_cpu: CpuMeter, first_event: list, first_out: list) -> None:
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"workers: {args.workers}, jobs per throughput run: {args.jobs}")
    print(f"bare RQ no-op, SimpleWorker:   {simple:8.1f} jobs/s  ({1000 * args.workers / simple:.1f} ms/job/worker)")
    print(f"bare RQ no-op, forking Worker: {fork:8.1f} jobs/s  ({1000 * args.workers / fork:.1f} ms/job/worker)")
    print(f"sandboxed trivial jobs:        {ours_tput:8.1f} jobs/s  "
          f"(ratio to bare SimpleWorker {ours_tput / simple:.2f}; target >= 0.5)")
    print(f"submit -> first log event (step start), median: {ms(first_event):6.1f} ms")
    print(f"submit -> first output line, median:            {ms(first_out):6.1f} ms  (target < 30 ms)")
    print(f"CPU ms per job, bare RQ SimpleWorker: {simple_cpu.per_job(args.jobs)}")
    print(f"CPU ms per job, sandboxed:            {ours_cpu.per_job(args.jobs)}")


if __name__ == "__main__":
    main()
