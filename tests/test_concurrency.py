"""Many sandboxes at once, from threads and from processes, with threads running."""

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import SandboxSpec, run

from .helpers import REPO

pytestmark = pytest.mark.root


def test_twenty_sandboxes_in_parallel_threads():
    spec = SandboxSpec(image="busybox", command=["sh", "-c", "echo $(hostname) $$; cat /proc/self/cgroup | head -1"])
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: run(spec), range(20)))
    assert all(r.exit_code == 0 for r in results)
    assert len({r.id for r in results}) == 20
    assert all(r.stdout.startswith(b"sandbox 2\n") for r in results)


def test_spawning_while_other_threads_run_and_hold_locks():
    """Threads that allocate, import and hold locks must not deadlock a spawn (the zygote forks)."""
    stop = threading.Event()
    lock = threading.Lock()

    def busy():
        while not stop.is_set():
            with lock:
                [str(i) for i in range(1000)]
                __import__("json").dumps({"x": list(range(100))})

    workers = [threading.Thread(target=busy) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for _ in range(20):
            assert run(SandboxSpec(image="busybox", command=["true"])).exit_code == 0
    finally:
        stop.set()
        for w in workers:
            w.join()


def test_several_processes_at_once_do_not_collide():
    script = ("from sandbox import SandboxSpec, run\n"
              "for _ in range(5):\n"
              "    assert run(SandboxSpec(image='busybox', command=['true'], name=None)).exit_code == 0\n"
              "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
             for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert outputs == [b"ok\n"] * 4 and all(p.returncode == 0 for p in procs)
