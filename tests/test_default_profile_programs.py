"""What people run in CI still works under the default seccomp profile.

Each test runs a real program in a ``host`` sandbox with the default
profile (Docker's) loaded, checks that the filter is on (``Seccomp: 2`` in
its /proc/self/status), and that the program did its work: Python with
threads and the three multiprocessing start methods, pytest, pip
installing a wheel, git, gcc building and running a threaded program,
Node with worker threads and a child process, a JVM with threads.
scripts/setup.sh installs them all (gcc, git, nodejs, default-jdk-headless).
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap

import pytest

from sandbox import Mount, SandboxSpec, run

from .jobs_support import redis_wheel

pytestmark = pytest.mark.root

#: Prints the filter mode first: 2 is a seccomp filter.
FILTERED = "grep '^Seccomp:' /proc/self/status; "
PATH = os.pathsep.join((os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"))


def in_sandbox(script: str, data: str | None = None, **spec) -> str:
    """Run ``script`` with sh in a host sandbox under the default profile; its stdout.

    ``data``: a host directory shown at /data (writable)."""
    mounts = (Mount(data, "/data", read_only=False),) if data else ()
    result = run(SandboxSpec(image="host", command=("sh", "-ec", FILTERED + script),
                             env={"PATH": PATH, "HOME": "/tmp", "LANG": "C.UTF-8"},
                             mounts=mounts, workdir="/data" if data else "/", **spec),
                 log_file=False)
    assert result.exit_code == 0, (result.exit_code, result.stdout[-2000:], result.stderr[-2000:])
    out = result.stdout.decode()
    assert out.startswith("Seccomp:\t2\n"), out[:200]
    return out.removeprefix("Seccomp:\t2\n")


def write(directory, name: str, text: str) -> None:
    (directory / name).write_text(textwrap.dedent(text))


def test_python_threads_and_every_multiprocessing_start_method(tmp_path):
    write(tmp_path, "work.py", """
        import multiprocessing, threading
        from concurrent.futures import ThreadPoolExecutor

        def square(n):
            return n * n

        if __name__ == "__main__":
            with ThreadPoolExecutor(8) as pool:
                print("threads", sum(pool.map(square, range(100))))
            for method in ("fork", "spawn", "forkserver"):
                with multiprocessing.get_context(method).Pool(3) as pool:
                    print(method, sum(pool.map(square, range(100))))
            lock, done = threading.Lock(), []
            def add():
                with lock:
                    done.append(1)
            workers = [threading.Thread(target=add) for _ in range(50)]
            [w.start() for w in workers]
            [w.join() for w in workers]
            print("joined", len(done))
    """)
    out = in_sandbox("python3 work.py", str(tmp_path))
    assert out.split("\n") == ["threads 328350", "fork 328350", "spawn 328350",
                               "forkserver 328350", "joined 50", ""]


def test_pytest_runs_a_suite_with_its_own_temp_dirs_and_subprocesses(tmp_path):
    write(tmp_path, "test_sample.py", """
        import subprocess, sys

        def test_tmp_path(tmp_path):
            (tmp_path / "f").write_text("x")
            assert (tmp_path / "f").read_text() == "x"

        def test_a_subprocess():
            out = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True)
            assert out.stdout == b"42\\n"

        def test_that_fails():
            assert 1 == 2
    """)
    out = in_sandbox("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -q -p no:cacheprovider "
                     "test_sample.py > report.txt || echo exit=$?; tail -1 report.txt", str(tmp_path))
    assert out.startswith("exit=1\n") and "1 failed, 2 passed" in out, out


def test_pip_installs_a_wheel_and_the_package_imports(tmp_path):
    wheel = redis_wheel(tmp_path)
    out = in_sandbox("python3 -m pip --version >/dev/null; "
                     f"python3 -m pip install -q --no-index --no-deps --target /tmp/site {wheel} "
                     "2>&1 | grep -v WARNING || true; "
                     "PYTHONPATH=/tmp/site python3 -c 'import redis; print(redis.__name__, redis.__file__)'",
                     str(tmp_path))
    assert out == "redis /tmp/site/redis/__init__.py\n"


def test_git_commits_branches_and_clones():
    script = """
        export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.org
        export GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.org
        git init -q -b main /tmp/repo && cd /tmp/repo
        echo one > file && git add file && git commit -qm first
        git checkout -qb topic && echo two >> file && git commit -qam second
        git checkout -q main && git merge -q --ff-only topic
        git clone -q /tmp/repo /tmp/clone && cd /tmp/clone
        git log --format=%s | tr '\\n' ' '; git gc -q; git fsck --no-progress 2>/dev/null && echo fsck-ok
    """
    assert in_sandbox(textwrap.dedent(script)) == "second first fsck-ok\n"


def test_gcc_builds_and_runs_a_threaded_program(tmp_path):
    write(tmp_path, "threads.c", """
        #include <pthread.h>
        #include <stdio.h>
        #include <stdlib.h>

        static long total;
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

        static void *add(void *arg) {
            for (int i = 0; i < 1000; i++) {
                pthread_mutex_lock(&lock);
                total += (long)arg;
                pthread_mutex_unlock(&lock);
            }
            return NULL;
        }

        int main(void) {
            pthread_t threads[8];
            for (long i = 0; i < 8; i++)
                pthread_create(&threads[i], NULL, add, (void *)(i + 1));
            for (int i = 0; i < 8; i++)
                pthread_join(threads[i], NULL);
            char *copy = malloc(1 << 24);
            printf("total %ld %s\\n", total, copy ? "malloc-ok" : "malloc-failed");
            return 0;
        }
    """)
    out = in_sandbox("gcc -O2 -pthread -o /tmp/threads threads.c && /tmp/threads", str(tmp_path))
    assert out == "total 36000 malloc-ok\n"


@pytest.fixture
def node():
    if shutil.which("node") is None:
        pytest.skip("node is not installed (scripts/setup.sh installs nodejs)")


def test_node_runs_worker_threads_a_child_process_and_file_io(node, tmp_path):
    write(tmp_path, "work.js", """
        const { Worker } = require("worker_threads");
        const { execFileSync } = require("child_process");
        const fs = require("fs");
        const worker = new Worker("const { parentPort } = require('worker_threads');"
                                  + "parentPort.postMessage(6 * 7);", { eval: true });
        worker.on("message", async (n) => {
            const child = execFileSync(process.execPath, ["-e", "console.log('child')"]).toString();
            await fs.promises.writeFile("/tmp/node.txt", "written");
            const back = await fs.promises.readFile("/tmp/node.txt", "utf8");
            console.log(`worker ${n} ${child.trim()} ${back}`);
            worker.terminate();
        });
    """)
    assert in_sandbox("node work.js", str(tmp_path)) == "worker 42 child written\n"


@pytest.fixture
def jvm():
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("no JDK installed (scripts/setup.sh installs default-jdk-headless)")


def test_a_jvm_compiles_and_runs_a_threaded_program(jvm, tmp_path):
    write(tmp_path, "Work.java", """
        import java.util.concurrent.*;

        public class Work {
            public static void main(String[] args) throws Exception {
                ExecutorService pool = Executors.newFixedThreadPool(4);
                java.util.List<Callable<Integer>> tasks = new java.util.ArrayList<>();
                for (int i = 1; i <= 4; i++) {
                    final int n = i;
                    tasks.add(() -> n);
                }
                long total = 0;
                for (Future<Integer> f : pool.invokeAll(tasks))
                    total += f.get();
                pool.shutdown();
                System.out.println("jvm " + total);
            }
        }
    """)
    out = in_sandbox("javac -d /tmp/classes Work.java && java -Xmx256m -cp /tmp/classes Work",
                     str(tmp_path))
    assert out == "jvm 10\n"


def test_a_build_s_run_steps_and_the_image_it_makes_run_filtered(tmp_path):
    """Built images are sandboxes like any other: the default profile at build and at run."""
    from sandbox import build_image, remove_image

    (tmp_path / "Sandboxfile").write_text(
        "FROM busybox\nRUN grep '^Seccomp:' /proc/self/status > /at-build\n")
    tag = f"seccomp-built-{os.getpid()}"
    build_image(str(tmp_path), tags=(tag,), quiet=True)
    try:
        result = run(SandboxSpec(image=tag, command=("sh", "-c", "cat /at-build; " + FILTERED)),
                     log_file=False)
    finally:
        remove_image(tag)
    assert result.stdout == b"Seccomp:\t2\nSeccomp:\t2\n"
