"""Many machines, simulated: Redis on one host, a worker on each of two others, over a LAN.

Hosts are network namespaces joined by veth pairs (tests/hosts_support.py);
each worker has its own state roots. Two faults, as README's "Jobs" states
what is guaranteed across them:

- a worker's link is cut mid-job (not a kill) and later restored;
- Redis (AOF on) restarts while jobs are queued and running.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from jobs import load_job_file, store, submit
from jobs.logstream import follow

from .hosts_support import Lan, LanRedis, worker_command
from .jobs_support import env, job_file

pytestmark = pytest.mark.root

SLOW = """
    name = "slow"
    image = "busybox"
    [matrix]
    N = {numbers}
    [[steps]]
    name = "s"
    run = "echo start $N; sleep 0.5; echo end $N"
"""
CHATTY = """
    name = "chatty"
    image = "busybox"
    [matrix]
    N = {numbers}
    [[steps]]
    name = "s"
    run = "i=1; while [ $i -le {lines} ]; do echo \\"$N line $i\\"; sleep 0.03; i=$((i+1)); done"
"""


@pytest.fixture
def lan(tmp_path):
    """Three hosts: Redis on the first, a worker on each of the others (named w1, w2)."""
    net = Lan(tmp_path).start()
    server = LanRedis(net).start()
    site = Site(net, server, tmp_path)
    try:
        yield site
    finally:
        site.stop_workers()
        server.stop()
        net.stop()


class Site:
    """The LAN, its Redis, its workers and a client on the first host."""

    def __init__(self, net: Lan, server: LanRedis, tmp_path) -> None:
        self.net, self.redis, self.tmp = net, server, tmp_path
        self.conn = server.client()
        self.workers: dict[int, subprocess.Popen] = {}

    def start_worker(self, index: int) -> None:
        log = self.log(index)
        self.workers[index] = self.net.popen(
            index, worker_command(self.redis.url, "hosts", f"w{index}"), log)
        self.wait_for_log(index, "takes jobs from", count=1)

    def log(self, index: int):
        return self.tmp / f"worker{index}.log"

    def wait_for_log(self, index: int, text: str, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log(index).exists() and self.log(index).read_text().count(text) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"worker {index} did not log {text!r} {count}x: {self.log(index).read_text()}")

    def submit(self, text: str) -> list[str]:
        specs = load_job_file(job_file(self.tmp, text))
        return [submit(self.conn, spec, queue="hosts") for spec in specs]

    def wait_final(self, ids: list[str], timeout: float = 300) -> dict[str, dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = {job_id: store.read(self.conn, job_id) for job_id in ids}
            if all(r["status"] not in ("queued", "running") for r in records.values()):
                return records
            time.sleep(0.2)
        raise AssertionError("jobs did not end: " + ", ".join(
            f"{j}={r['status']}" for j, r in records.items() if r["status"] in ("queued", "running")))

    def stop_workers(self) -> dict[int, int]:
        codes = {}
        for index, proc in self.workers.items():
            if proc.poll() is None:
                proc.terminate()
            try:
                codes[index] = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[index] = proc.wait()
        self.workers.clear()
        return codes


def test_a_worker_cut_off_mid_job(lan):
    """Its job ends error (reaped on the lease), runs once, its sandbox stops; it comes back."""
    lan.start_worker(1)
    lan.start_worker(2)
    # enough to keep host 1 busy through the cut (the lease, then host 2 stopping its sandbox)
    ids = lan.submit(SLOW.format(numbers=[str(n) for n in range(40)]))
    victim = mid_job_on(lan, "w2", ids)
    cut = time.monotonic()
    lan.net.cut(2)
    try:
        record = wait_until_final(lan, victim)  # while the link is still down
        verdict_after = time.monotonic() - cut
        wait_until(lambda: not lan.net.sandboxes(2), "host 2 stopped its sandbox, cut off")
        stopped_after = time.monotonic() - cut
    finally:
        lan.net.restore(2)
    restored = time.time()
    print(f"\ncut mid-job: the job ended {record['status']} after {verdict_after:.1f}s, "
          f"host 2's sandbox gone after {stopped_after:.1f}s (lease {store.LEASE_TTL}s)")
    assert record["status"] == "error" and "stopped mid-job" in record["error"], record
    more = lan.submit(SLOW.format(numbers=[str(n) for n in range(40, 50)]))  # for host 2 when it is back
    records = lan.wait_final(ids + more)
    bad = {j: (r["status"], r["worker"], r.get("error")) for j, r in records.items() if r["status"] != "passed"}
    assert set(bad) == {victim}, (victim, bad, lan.log(2).read_text()[-5000:])
    assert any(r["worker"] == "w2" and float(r["started_at"]) > restored for r in records.values()), \
        "the cut worker took no job after its link came back"
    events = list(follow(lan.conn, victim, follow=False))
    assert [e.kind for e in events].count("step-start") == 1  # it ran once
    assert events[-1].kind == "eof" and events[-1].fields["status"] == "error"
    assert f"job {victim} 'slow" not in lan.log(1).read_text()  # nobody else ran it
    assert "stopping its sandbox" in lan.log(2).read_text()
    assert lan.stop_workers() == {1: 0, 2: 0}
    for index in (1, 2):
        assert lan.net.sandboxes(index) == []
        ps = subprocess.run([sys.executable, "-m", "sandbox", "ps"], capture_output=True, text=True,
                            env={**env(), **lan.net.state(index)}, timeout=60)
        assert ps.returncode == 0 and len(ps.stdout.splitlines()) == 1, ps.stdout


def test_a_redis_restart_with_queued_and_running_jobs(lan):
    """No queued job is lost, followers see every line once, running jobs go on, workers resume."""
    lan.start_worker(1)
    lan.start_worker(2)
    lines = 10
    ids = lan.submit(CHATTY.format(numbers=[str(n) for n in range(40)], lines=lines))
    followers = [Follower(lan, job_id) for job_id in ids]
    wait_until(lambda: len(lan.conn.smembers(store.RUNNING_SET)) >= 1
               and any(store.status_of(lan.conn, j) == "queued" for j in ids[10:]),
               "jobs queued and running at once")
    running = {raw.decode() for raw in lan.conn.smembers(store.RUNNING_SET)}
    lan.redis.restart(down_for=2.0)  # a restart as compose or systemd makes it, shorter than a lease
    restarted = time.time()
    more = lan.submit(CHATTY.format(numbers=[str(n) for n in range(40, 48)], lines=lines))
    records = lan.wait_final(ids + more)
    assert {j: r["status"] for j, r in records.items() if r["status"] != "passed"} == {}
    assert running & set(ids)  # some went through the restart mid-run
    after = {r["worker"] for r in records.values() if float(r["started_at"]) > restarted}
    assert after == {"w1", "w2"}, after  # both took jobs after it
    for f in followers:
        f.thread.join(120)
        assert f.error is None, f.error
        n = f.job_number
        assert [e.seq for e in f.events] == list(range(1, len(f.events) + 1))
        out = b"".join(e.data for e in f.events if e.kind == "out").decode().splitlines()
        assert out == [f"{n} line {i}" for i in range(1, lines + 1)], (f.job_id, out)
        assert f.events[-1].kind == "eof" and f.events[-1].fields["status"] == "passed"
    assert lan.stop_workers() == {1: 0, 2: 0}
    assert lan.net.sandboxes(1) == lan.net.sandboxes(2) == []


class Follower:
    """A thread following one job's log from the first host, with a client of its own."""

    def __init__(self, lan: Site, job_id: str) -> None:
        self.job_id = job_id
        spec = store.read(lan.conn, job_id)
        self.job_number = spec["name"].split("N=")[1].rstrip(")")
        self.events: list = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(lan.redis.client(),), daemon=True)
        self.thread.start()

    def _run(self, conn) -> None:
        try:
            self.events.extend(follow(conn, self.job_id, timeout=240))
        except BaseException as exc:
            self.error = exc


def mid_job_on(lan: Site, worker: str, ids: list[str]) -> str:
    """The id of a job ``worker`` runs and whose command has started (it printed `start`)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for raw in lan.conn.smembers(store.RUNNING_SET):
            job_id = raw.decode()
            ours = job_id in ids and lan.conn.hget(store.key(job_id), "worker") == worker.encode()
            if ours and any(e.data.startswith(b"start") for e in follow(lan.conn, job_id, follow=False)):
                return job_id
        time.sleep(0.02)
    raise AssertionError(f"{worker} never ran a job")


def wait_until_final(lan: Site, job_id: str, timeout: float = 120) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.read(lan.conn, job_id)
        if record["status"] not in ("queued", "running"):
            return record
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end while its worker was cut off")


def wait_until(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {what}")
