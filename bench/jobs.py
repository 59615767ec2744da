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

    python3 bench/jobs.py [--workers 2] [--jobs 200] [--latency-runs 30]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency-runs", type=int, default=30)
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
        simple, simple_cpu = bare_rq(server.url, "simple", args.workers, args.jobs, env, pid)
        fork, _ = bare_rq(server.url, "fork", args.workers, args.jobs, env, pid)
        ours_tput, ours_cpu, first_event, first_line = ours(server.url, args.workers, args.jobs,
                                                            args.latency_runs, env, pid)
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", tmp])
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"workers: {args.workers}, jobs per throughput run: {args.jobs}")
    print(f"bare RQ no-op, SimpleWorker:   {simple:8.1f} jobs/s  ({1000 * args.workers / simple:.1f} ms/job/worker)")
    print(f"bare RQ no-op, forking Worker: {fork:8.1f} jobs/s  ({1000 * args.workers / fork:.1f} ms/job/worker)")
    print(f"sandboxed trivial jobs:        {ours_tput:8.1f} jobs/s  "
          f"(ratio to bare SimpleWorker {ours_tput / simple:.2f}; target >= 0.5)")
    print(f"submit -> first log event (step start), median: {ms(first_event):6.1f} ms")
    print(f"submit -> first output line, median:            {ms(first_line):6.1f} ms  (target < 30 ms)")
    print(f"CPU ms per job, bare RQ SimpleWorker: {simple_cpu.per_job(args.jobs)}")
    print(f"CPU ms per job, sandboxed:            {ours_cpu.per_job(args.jobs)}")


if __name__ == "__main__":
    main()
