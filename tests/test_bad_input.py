"""The bad inputs of issue 15, one test (or more) per item: one clear line, the right status,
nothing left behind, nothing outside the sandbox touched.

The archive attacks of item 1 are in test_unpack.py (one test per attack); this
module drives the same inputs through the `sandbox` command as a user would.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile

import pytest

from sandbox import SandboxSpec, SpecError

from .helpers import REPO, sandbox_cli

root = pytest.mark.root


def one_line(out: subprocess.CompletedProcess, status: int = 125) -> str:
    """The single stderr line of a refused command (asserting there is exactly one)."""
    text = out.stderr.decode()
    assert out.returncode == status, (out.returncode, text)
    assert text.count("\n") == 1 and "Traceback" not in text, text
    return text


def tar_bytes(*members: tuple[str, bytes, str], gz: bool = False) -> bytes:
    """An archive of (name, type, data-or-linkname) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
            else:
                info.linkname = value
                tar.addfile(info)
    return gzip.compress(buf.getvalue()) if gz else buf.getvalue()


def store_leftovers() -> list[str]:
    """Work dirs in the image store's tmp/, and half-written files beside its index."""
    images = os.path.join(os.environ["SANDBOX_STATE_DIR"], "images")
    if not os.path.isdir(images):
        return []
    work = os.path.join(images, "tmp")
    return ([n for n in os.listdir(images) if n.startswith(".")]
            + (os.listdir(work) if os.path.isdir(work) else []))


# -- 1, 10: image import of archives that reach out, or are broken -------------

@pytest.mark.parametrize("members, says", [
    ([("../x", tarfile.REGTYPE, b"out")], "archive member '../x': a path with '..'"),
    ([("/abs", tarfile.REGTYPE, b"out")], "archive member '/abs': an absolute path"),
    ([("evil", tarfile.SYMTYPE, "/tmp"), ("evil/planted", tarfile.REGTYPE, b"x")],
     "archive member 'evil/planted': its parent 'evil' is a symbolic link"),
    ([("hl", tarfile.LNKTYPE, "/etc/passwd")], "archive member 'hl': a hard link to '/etc/passwd'"),
    ([("null", tarfile.CHRTYPE, "")], "archive member 'null': a device node"),
])
def test_image_import_refuses_members_that_reach_out(tmp_path, members, says):
    (tmp_path / "bad.tar").write_bytes(tar_bytes(*members))
    line = one_line(sandbox_cli("image", "import", str(tmp_path / "bad.tar"), "bad"))
    assert line.startswith("sandbox: error: cannot import ") and says in line, line
    assert "accepted:" in line and store_leftovers() == []
    assert not os.path.exists("/abs") and not os.path.exists("/tmp/planted")


def test_image_import_of_a_truncated_tar_gz_is_one_line(tmp_path):
    whole = tar_bytes(("a", tarfile.REGTYPE, os.urandom(1 << 16)), gz=True)
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    line = one_line(sandbox_cli("image", "import", str(tmp_path / "cut.tar.gz"), "cut"))
    assert "truncated or corrupt" in line and store_leftovers() == []


def test_image_import_of_the_store_itself_is_refused():
    images = os.path.join(os.environ["SANDBOX_STATE_DIR"], "images")
    os.makedirs(images, exist_ok=True)
    line = one_line(sandbox_cli("image", "import", images, "self", timeout=30))
    assert "it holds the image store" in line and store_leftovers() == []


# -- 8, 9, 10, 11, 12: flags of `sandbox run` -----------------------------------

@pytest.mark.parametrize("flags, says", [
    (["--cpus", "inf"], "invalid cpus 'inf': expected a positive number"),
    (["--cpus", "nan"], "invalid cpus 'nan'"),
    (["--timeout", "inf"], "invalid timeout 'inf'"),
    (["-v", ":/x"], "invalid volume ':/x': expected SRC:DST"),
    (["-v", "/tmp:"], "invalid volume '/tmp:'"),
    (["-v", "/dev:/dev"], "invalid mount target '/dev': expected a path other than /, /dev, /proc and /sys"),
    (["-v", "/tmp:/proc/"], "invalid mount target '/proc/'"),
    (["-v", "/tmp:/sys"], "invalid mount target '/sys'"),
    (["-p", "8081:80"], "invalid publish 8081:80 on network none: expected --network bridge"),
    (["--egress"], "invalid egress on network none: expected --network bridge"),
    (["--name", "../x"], "invalid name '../x': expected letters"),
    (["--network", "bridge", "-p", "8081:80", "-p", "8081:81"],
     "invalid publish 8081:80 8081:81: expected each host port at most once"),
    (["--user", "99999999999"], "invalid user '99999999999': expected UID[:GID] or NAME[:GROUP], "
                                "numeric ids from 0 to 4294967294"),
])
def test_run_flags_are_refused_in_one_line_before_anything_runs(flags, says):
    line = one_line(sandbox_cli("run", *flags, "busybox", "--", "sh", "-c", "echo ran"))
    assert says in line, line
    assert "Publish(" not in line and "(" not in line.split(":", 2)[2].split("expected")[0]


def test_an_empty_command_is_named_as_typed():
    line = one_line(sandbox_cli("run", "busybox", "--", ""))
    assert "invalid command '': expected a program to run" in line and "('',)" not in line


def test_non_finite_numbers_from_python_and_job_files_are_spec_errors():
    for limits in ({"memory": float("inf")}, {"timeout": float("nan")}, {"pids": float("inf")},
                   {"cpus": float("inf")}, {"disk": float("-inf")}):
        with pytest.raises(SpecError):
            SandboxSpec(image="busybox", command=["true"], limits=limits)


@root
def test_a_mount_over_dev_is_refused_before_the_command_runs():
    out = sandbox_cli("run", "-v", "/dev:/dev", "busybox", "--", "sh", "-c", "echo hi")
    assert out.stdout == b"" and "invalid mount target '/dev'" in one_line(out)


@root
def test_host_caps_are_said_once_on_stderr():
    out = sandbox_cli("run", f"--cpus={os.cpu_count() + 997}", "--ulimit", "nofile=999999999",
                      "busybox", "--", "sh", "-c", "ulimit -n")
    assert out.returncode == 0, out.stderr
    notes = out.stderr.decode().splitlines()
    assert len(notes) == 2, notes
    assert notes[0].startswith(f"sandbox: note: cpus {os.cpu_count() + 997} is more than the ")
    assert "the sandbox gets at most" in notes[0]
    assert notes[1].startswith("sandbox: note: ulimit nofile=999999999 is above this host's hard")
    assert out.stdout.strip().isdigit() and int(out.stdout) < 999999999


@root
def test_dash_e_of_an_unset_variable_leaves_it_out(monkeypatch):
    monkeypatch.delenv("SANDBOX_TEST_UNSET", raising=False)
    monkeypatch.setenv("SANDBOX_TEST_SET", "here")
    out = sandbox_cli("run", "-e", "SANDBOX_TEST_UNSET", "-e", "SANDBOX_TEST_SET", "busybox", "--", "env")
    env = out.stdout.decode().splitlines()
    assert "SANDBOX_TEST_SET=here" in env and not any(e.startswith("SANDBOX_TEST_UNSET") for e in env)


@root
def test_time_limits_are_rounded_in_messages():
    out = sandbox_cli("run", "--timeout", "0.99873", "busybox", "--", "sleep", "5")
    assert out.returncode == 137 and out.stderr == b"sandbox: killed: wall time limit 1s exceeded\n"


# -- 4: pid 1 inside shows as sandbox-init only ----------------------------------

@root
@pytest.mark.parametrize("spawn", ["direct", "zygote"])
def test_pid_1_shows_no_host_command_line(spawn, monkeypatch):
    from sandbox import run

    monkeypatch.setenv("SANDBOX_SPAWN", spawn)
    for _ in range(2):  # with zygote: the spare made ahead for the second one too
        r = run(SandboxSpec(image="busybox", command=["sh", "-c", "cat /proc/1/cmdline; echo; "
                                                     "cat /proc/1/comm; ps -o args | head -2"]))
        assert r.exit_code == 0, r.stderr
        cmdline, comm, _, ps_pid1 = r.stdout.split(b"\n")[:4]
        assert (cmdline, comm, ps_pid1.strip()) == (b"sandbox-init\0", b"sandbox-init", b"sandbox-init")


@root
@pytest.mark.parametrize("way", ["direct", "zygote", "served"])
def test_pid_1_of_a_python_target_shows_no_host_command_line(way, monkeypatch):
    from sandbox import Sandbox
    from sandbox.process.forkserver import ForkServer, ServedTarget

    monkeypatch.setenv("SANDBOX_SPAWN", "direct" if way == "direct" else "zygote")

    def target():
        with open("/proc/1/cmdline", "rb") as f:
            os.write(1, f.read())
        return 0

    for _ in range(2):  # the first target's init is forked here; later ones are spares
        server = ForkServer(lambda key: target) if way == "served" else None
        runnable = ServedTarget(server, "t", target) if server else target
        try:
            with Sandbox(SandboxSpec(image="host", command=["target"]), target=runnable,
                         log_file=False) as box:
                result = box.wait()
        finally:
            if server is not None:
                server.close()
        assert (result.exit_code, result.stdout) == (0, b"sandbox-init\0")


@root
def test_the_cli_run_does_not_leak_its_argv_to_pid_1():
    out = sandbox_cli("run", "-e", "SECRET_TOKEN=x", "busybox", "--", "cat", "/proc/1/cmdline")
    assert out.stdout == b"sandbox-init\0"


def test_set_cmdline_replaces_the_whole_argv_in_a_child():
    from sandbox.linux import set_cmdline

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        set_cmdline("sandbox-init")
        with open("/proc/self/cmdline", "rb") as f:
            os.write(w, f.read())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        seen = f.read()
    os.waitpid(pid, 0)
    assert seen == b"sandbox-init\0"


# -- 3, 11, 13, 14: Redis URLs, passwords, the worker ------------------------------

PASSWORD = "s3cret-do-not-show"


@pytest.fixture
def locked_redis():
    """A Redis of this test's own that wants a password."""
    from .jobs_support import RedisServer

    server = RedisServer(password=PASSWORD).start()
    yield server
    server.stop()


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def children_of(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_redact_url_hides_passwords_everywhere_in_a_url():
    from sandbox import redact_url

    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://user:s3cret@h/1") == "redis://user:***@h/1"
    assert redact_url("redis://h/0?password=s3cret&db=1") == "redis://h/0?password=***&db=1"
    assert redact_url("unix://:s3cret@/run/redis.sock") == "unix://:***@/run/redis.sock"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


@root
def test_worker_children_get_the_url_without_ps_seeing_the_password(locked_redis):
    from .jobs_support import env

    proc = subprocess.Popen([os.sys.executable, "-m", "sandbox", "worker", "--redis",
                             locked_redis.url, "--concurrency", "2", "--queue", "q-ps"],
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        from .helpers import wait_for

        kids = wait_for(lambda: len(children_of(proc.pid)) == 2 and children_of(proc.pid))
        wait_for(lambda: b"***" in cmdline(proc.pid))
        for pid in [proc.pid, *kids]:
            assert PASSWORD.encode() not in cmdline(pid), cmdline(pid)
        assert b"redis://:***@127.0.0.1" in cmdline(proc.pid)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert PASSWORD.encode() not in out


@pytest.mark.parametrize("verb", [["jobs", "list"], ["submit", "JOB"], ["worker", "--burst"],
                                  ["worker", "--concurrency", "2", "--burst"]])
def test_a_wrong_redis_password_is_one_line_never_retried(locked_redis, tmp_path, verb):
    job = tmp_path / "j.toml"
    job.write_text('name = "t"\n[[steps]]\nname = "a"\nrun = "true"\n')
    wrong = locked_redis.url.replace(PASSWORD, "wrong-password")
    args = [str(job) if a == "JOB" else a for a in verb]
    line = one_line(sandbox_cli(*args, "--redis", wrong, timeout=30))
    assert "refused the credentials" in line and "redis://:***@127.0.0.1:" in line
    assert "wrong-password" not in line and "start redis-server" not in line


def test_an_unreachable_redis_is_named_without_its_password():
    from .jobs_support import free_port

    line = one_line(sandbox_cli("jobs", "list", "--redis",
                                f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"))
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in line and PASSWORD not in line


@pytest.mark.parametrize("verb", [["list"], ["show", "nosuchjob"], ["logs", "nosuchjob"],
                                  ["cancel", "nosuchjob"], ["wait", "nosuchjob"],
                                  ["artifacts", "nosuchjob"]])
def test_jobs_verbs_take_redis_before_or_after_the_verb(locked_redis, verb):
    before = sandbox_cli("jobs", "--redis", locked_redis.url, *verb)
    after = sandbox_cli("jobs", *verb, "--redis", locked_redis.url)
    assert (after.returncode, after.stdout) == (before.returncode, before.stdout)
    assert b"unrecognized arguments" not in after.stderr and b"no queue" not in after.stderr
    if verb != ["list"]:
        assert b"no job 'nosuchjob'" in after.stderr
    else:
        assert after.returncode == 0 and after.stdout.startswith(b"ID")


@root
def test_a_supervisor_cleans_up_once_and_each_line_is_logged_once(locked_redis):
    from .jobs_support import env

    leftover = os.path.join(os.environ["SANDBOX_RUN_DIR"], "jobs", "0123456789ab")
    os.makedirs(os.path.join(leftover, "workspace"))
    with open(os.path.join(leftover, "owner"), "w") as f:
        f.write('{"pid": 999999999, "start": 1}')
    out = subprocess.run([os.sys.executable, "-m", "sandbox", "worker", "--concurrency", "2",
                          "--burst", "--queue", "q-once"], env={**env(), "SANDBOX_REDIS_URL":
                          locked_redis.url}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line.split(" ", 3)[3] for line in out.stderr.splitlines()]
    assert lines.count("INFO gc: removed the directory of job 0123456789ab left by a dead worker") == 1
    assert len(lines) == len(set(lines)), lines
    assert not os.path.exists(leftover)


# -- 2: a job file's workspace that is a link, or outside its tree ---------------------

def job_toml(tmp_path, workspace: str, run: str = "cat /workspace/shadow || true",
             extra: str = "") -> str:
    path = tmp_path / "job.toml"
    path.write_text(f'name = "ws"\nimage = "busybox"\nworkspace = "{workspace}"\n{extra}'
                    f'[[steps]]\nname = "s"\nrun = "{run}"\n')
    return str(path)


@pytest.mark.parametrize("workspace, says", [
    ("wslink", "'wslink': {tmp}/wslink is a symbolic link (to /etc)"),
    ("sub/inner", "'sub/inner': {tmp}/sub is a symbolic link"),
    ("../", "'../' is outside the job file's directory"),
    ("/etc", "'/etc' is outside the job file's directory"),
])
def test_a_job_file_cannot_take_its_workspace_from_outside_its_tree(tmp_path, workspace, says):
    os.symlink("/etc", tmp_path / "wslink")
    os.symlink(str(tmp_path / "elsewhere"), tmp_path / "sub")
    (tmp_path / "elsewhere" / "inner").mkdir(parents=True)
    line = one_line(sandbox_cli("submit", job_toml(tmp_path, workspace)))
    assert f"job.toml: workspace: {says.format(tmp=os.path.realpath(tmp_path))}" in line, line
    assert "pass --workspace DIR to sandbox submit" in line


@root
def test_the_submitter_can_name_any_workspace_on_the_command_line(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "shadow").write_text("mine\n")
    (tmp_path / "jobdir").mkdir()
    os.symlink(str(elsewhere), tmp_path / "jobdir" / "wslink")
    out = sandbox_cli("submit", "--workspace", str(tmp_path / "jobdir" / "wslink"),
                      job_toml(tmp_path / "jobdir", "wslink"))
    assert out.returncode == 0, out.stderr
    assert b"mine\n" in out.stdout


# -- 5: artifact globs through a link out of the workspace, bounded --------------------

def test_globs_never_enter_a_symlinked_directory(tmp_path):
    from jobs.globbing import match

    (tmp_path / "ws/logs").mkdir(parents=True)
    (tmp_path / "ws/logs/a.txt").write_text("a")
    (tmp_path / "host/usr").mkdir(parents=True)
    (tmp_path / "host/usr/secret").write_text("s")
    os.symlink(str(tmp_path / "host"), tmp_path / "ws/r")
    os.symlink("logs/a.txt", tmp_path / "ws/alink")
    ws = str(tmp_path / "ws")
    assert match(ws, "r/usr/**/*") == [] and match(ws, "r/usr/secret") == []
    assert match(ws, "**/*") == ["alink", "logs", "logs/a.txt", "r"]  # as glob, links not entered
    assert match(ws, "**/*.txt") == ["logs/a.txt"] and match(ws, "logs/*") == ["logs/a.txt"]


def test_glob_walks_are_bounded_by_entries_time_and_cancel(tmp_path):
    import time

    from jobs.globbing import Budget, GlobStopped, match

    for i in range(50):
        (tmp_path / f"f{i}").write_text("x")
    with pytest.raises(GlobStopped, match="files looked at"):
        match(str(tmp_path), "**/*", Budget(entries=10))
    with pytest.raises(GlobStopped, match="the job's timeout ran out"):
        match(str(tmp_path), "*", Budget(deadline=time.monotonic() - 1))
    with pytest.raises(GlobStopped, match="the job was cancelled"):
        match(str(tmp_path), "*", Budget(stop=lambda: True))


def test_a_collection_stopped_by_the_timeout_ends_the_job_timed_out(tmp_path):
    import time

    from jobs.cancellation import Cancel
    from jobs.collection import collect
    from jobs.events import JobLog
    from jobs.execute import verdict
    from jobs.globbing import Budget
    from jobs.model import JobSpec, ResultsSpec, Step

    (tmp_path / "a.txt").write_text("a")
    spec = JobSpec(name="j", steps=(Step("s", "true"),), results=ResultsSpec(artifacts=("*.txt",)))
    stored = []
    done = collect(spec, "id", str(tmp_path), JobLog(), lambda _id, items: stored.append(items),
                   Budget(deadline=time.monotonic() - 1))
    assert done.stopped == "the job's timeout ran out" and stored == []
    assert verdict(spec, [], done.junit, False, done.stopped) == (
        "timed_out", "collecting the results stopped: the job's timeout ran out")
    cancel = Cancel()
    cancel.set()
    done = collect(spec, "id", str(tmp_path), JobLog(), lambda *_: None, Budget(stop=cancel.is_set))
    assert done.stopped == "the job was cancelled"


@root
def test_an_artifact_glob_through_a_link_to_the_host_finds_nothing(tmp_path):
    import jobs

    host = tmp_path / "host"
    (host / "usr").mkdir(parents=True)
    (host / "usr" / "secret").write_text("host file\n")
    spec, = jobs.parse_job({"name": "glob", "image": "busybox", "timeout": "30s",
                            "steps": [{"name": "s", "run": f"ln -s {host} /workspace/r"}],
                            "results": {"artifacts": ["r/usr/**/*", "r/usr/secret"]}})
    notes = []
    result = jobs.run_local(spec, on_event=lambda e: notes.append(e) if e.kind == "note" else None)
    assert result.status == "passed" and result.artifacts == ()
    said = [e.data.decode() for e in notes]
    assert "artifact r/usr/**/*: nothing matched" in said and "artifact r/usr/secret: nothing matched" in said


# -- 6, 7: killed imports and killed in-process submits leave nothing gc cannot see -----

@pytest.mark.parametrize("kind", ["chardev", "fifo"])
def test_image_import_refuses_devices_and_fifos_without_reading_them(tmp_path, kind):
    if kind == "fifo":
        source = str(tmp_path / "fifo")
        os.mkfifo(source)
        says = "it is a FIFO"
    else:
        source, says = "/dev/zero", "it is a character device"
    line = one_line(sandbox_cli("image", "import", source, "z", timeout=30))
    assert says in line and "accepted: a directory, a tar archive" in line
    assert store_leftovers() == []


@root
def test_gc_removes_a_killed_import(tmp_path):
    import signal

    from .helpers import popen_cli, wait_for

    proc = subprocess.Popen([os.sys.executable, "-m", "sandbox", "image", "import", "-", "slow"],
                            stdin=subprocess.PIPE, env={**os.environ, "PYTHONPATH": REPO})
    try:
        proc.stdin.write(tar_bytes(("a", tarfile.REGTYPE, b"x" * 4096))[:1024])
        proc.stdin.flush()
        wait_for(lambda: store_leftovers())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdin.close()
    left = store_leftovers()
    assert left and left[0].startswith(f"{proc.pid}-")  # the work dir names its process
    out = sandbox_cli("gc")
    assert out.returncode == 0 and b"removed images: 1 work dirs" in out.stdout, out.stdout
    assert store_leftovers() == []


@root
def test_gc_removes_the_job_dir_of_a_killed_in_process_submit(tmp_path):
    import signal

    from .helpers import wait_for

    jobs_dir = os.path.join(os.environ["SANDBOX_RUN_DIR"], "jobs")
    path = job_toml(tmp_path, ".", run="sleep 60")
    proc = subprocess.Popen([os.sys.executable, "-m", "sandbox", "submit", path],
                            stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": REPO})
    try:
        wait_for(lambda: os.path.isdir(jobs_dir) and os.listdir(jobs_dir))
        (job_id,) = os.listdir(jobs_dir)
        sandboxes = os.path.join(os.environ["SANDBOX_RUN_DIR"], "sandboxes")
        # its step runs (a state dir without its record is left 30s to its maker)
        wait_for(lambda: any(os.path.exists(os.path.join(sandboxes, s, "record.json"))
                             for s in os.listdir(sandboxes)) if os.path.isdir(sandboxes) else False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    out = sandbox_cli("gc")
    assert out.returncode == 0, out.stderr
    assert f"removed job directory {job_id}".encode() in out.stdout
    assert os.listdir(jobs_dir) == []


# -- 15: output over the limit: one behaviour for sandbox run and job steps ---------------

OVERFLOW = "head -c 100000 /dev/zero | tr '\\0' x; echo; echo still running"


@root
def test_output_over_the_limit_is_truncated_and_the_run_goes_on():
    out = sandbox_cli("run", "--output-limit", "1k", "busybox", "--", "sh", "-c", OVERFLOW + "; exit 3")
    assert out.returncode == 3 and len(out.stdout) == 1024
    assert out.stderr == b"sandbox: output truncated: kept the first 1 KiB of 97.7 KiB\n"


@root
def test_runaway_output_is_killed_like_any_limit():
    out = sandbox_cli("run", "--output-limit", "1k", "busybox", "--", "yes")
    assert out.returncode == 137 and len(out.stdout) == 1024
    assert out.stderr.startswith(b"sandbox: killed: output limit 1 KiB exceeded by more than 64 MiB")


@root
def test_job_steps_treat_output_over_the_limit_as_sandbox_run_does(tmp_path):
    import jobs

    spec, = jobs.parse_job({"name": "out", "image": "busybox", "limits": {"output": "1k"},
                            "steps": [{"name": "over", "run": OVERFLOW},
                                      {"name": "runaway", "run": "yes"}]})
    result = jobs.run_local(spec)
    over, runaway = result.steps
    assert (over.status, over.exit_code, over.result["output_truncated"]) == ("passed", 0, True)
    assert over.message == "output truncated: kept the first 1 KiB of 97.7 KiB"
    assert (runaway.status, runaway.exit_code, runaway.result["output_killed"]) == ("failed", 137, True)
    assert runaway.message.startswith("killed: output limit 1 KiB exceeded")


# -- 16: sandbox rm -f of a running sandbox run ---------------------------------------------

@root
def test_a_run_removed_by_sandbox_rm_says_so():
    from .helpers import popen_cli, wait_for

    proc = popen_cli("run", "--name", "victim", "busybox", "--", "sleep", "60")
    try:
        wait_for(lambda: b"victim" in sandbox_cli("ps").stdout)
        assert sandbox_cli("rm", "-f", "victim").returncode == 0
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 137
    assert err == b"sandbox: killed: removed by `sandbox rm` while it ran\n"


# -- 17: the JUnit summary's time ----------------------------------------------------------

@pytest.mark.parametrize("suite_time, cases, shown", [
    ('time="0.69"', ('time="0.30"', 'time="0.20"'), "in 0.69s"),  # the suite's own time
    ('time="0.04"', ('time="0.03"', 'time="0.01"'), "in 0.04s"),  # not 0.0s
    ("", ('time="0.30"', 'time="0.20"'), "in 0.50s"),  # no suite time: the cases'
])
def test_the_junit_summary_shows_the_suites_time(tmp_path, suite_time, cases, shown):
    from jobs.junit import parse_reports

    body = "".join(f'<testcase classname="t" name="c{i}" {t}/>' for i, t in enumerate(cases))
    (tmp_path / "r.xml").write_text(f'<testsuites><testsuite name="s" tests="2" {suite_time}>'
                                    f"{body}</testsuite></testsuites>")
    assert parse_reports(str(tmp_path), ["r.xml"]).headline() == f"2 passed {shown}"


def test_pytests_own_report_keeps_its_time(tmp_path):
    from jobs.junit import parse_reports

    (tmp_path / "test_t.py").write_text("import time\ndef test_a():\n    time.sleep(0.05)\n")
    subprocess.run([os.sys.executable, "-m", "pytest", "-q", "-p", "no:sandbox", "-p",
                    "no:cacheprovider", f"--junitxml={tmp_path}/r.xml", str(tmp_path / "test_t.py")],
                   capture_output=True, check=True, cwd=tmp_path)
    report = parse_reports(str(tmp_path), ["r.xml"])
    assert report.time >= 0.05 and report.headline() == f"1 passed in {report.time:.2f}s"
    assert not report.headline().endswith("in 0.0s")


# -- 18: the tour's image import says where a rootfs comes from, and works ----------------

@root
def test_the_tours_rootfs_recipe_works_as_written(tmp_path):
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    tour = readme.split("## A short tour", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    start = tour.index("mkdir -p rootfs/bin")
    recipe = tour[start:tour.index("\n", tour.index("sandbox image import"))]
    assert "podman export" in tour and "busybox --list" in recipe
    script = (f'sandbox() {{ PYTHONPATH={REPO} {os.sys.executable} -m sandbox "$@"; }}\n'
              f"set -e\n{recipe}\nsandbox image rm myimage >/dev/null\n")
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"imported myimage") and int(out.stdout.split(b"\n")[1]) > 100


# -- 19 and 11: the default bridge, published ports, cpusets --------------------------------

@pytest.mark.parametrize("name, says", [
    ("none", "'none' is a network mode, not a network: there is nothing to remove"),
    ("host", "'host' is a network mode, not a network"),
])
def test_network_rm_of_a_mode_says_what_it_is(name, says):
    assert says in one_line(sandbox_cli("network", "rm", name))


@root
def test_the_default_bridge_is_kept_while_used_and_its_removal_says_what_follows():
    from sandbox import NetworkSpec, Sandbox

    with Sandbox(SandboxSpec(image="busybox", command=["sleep", "30"], name="user1",
                             network=NetworkSpec("bridge"))) as box:
        line = one_line(sandbox_cli("network", "rm", "bridge"))
        assert "network 'bridge' has 1 member(s): user1" in line
        box.kill()
        box.wait()
    out = sandbox_cli("network", "rm", "bridge")
    assert out.returncode == 0, out.stderr
    assert b"it is made again, its subnet chosen afresh, the next time a sandbox uses " \
           b"--network bridge" in out.stdout
    again = one_line(sandbox_cli("network", "rm", "bridge"))
    assert "does not exist now: it is made the first time a sandbox uses --network bridge" in again


@root
def test_a_host_port_another_sandbox_publishes_is_one_line():
    import socket

    from sandbox import NetworkSpec, Sandbox

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Sandbox(SandboxSpec(image="busybox", command=["sleep", "30"], name="first",
                             network=NetworkSpec("bridge", publish=(f"{port}:80",)))) as box:
        line = one_line(sandbox_cli("run", "--network", "bridge", "-p", f"{port}:81", "busybox",
                                    "--", "true"))
        assert f"host port {port} is already published by sandbox first" in line
        assert "nft" not in line and "File exists" not in line
        box.kill()
        box.wait()


def test_a_cpuset_beyond_this_hosts_cpus_is_one_line():
    line = one_line(sandbox_cli("run", "--cpuset", "0-4095", "busybox", "--", "true"))
    assert "invalid cpuset '0-4095': expected CPUs of this host: " in line
    assert "/sys/fs/cgroup" not in line


# -- siblings: names that are paths, forged queue entries, reprs ---------------------------

@pytest.mark.parametrize("verb", [["rm", "-f"], ["logs"]])
def test_a_sandbox_reference_is_never_a_path(tmp_path, verb):
    victim = os.path.join(os.environ["SANDBOX_RUN_DIR"], "victim")
    os.makedirs(victim, exist_ok=True)
    open(os.path.join(victim, "precious"), "w").close()
    os.makedirs(os.path.join(os.environ["SANDBOX_RUN_DIR"], "sandboxes"), exist_ok=True)
    try:
        line = one_line(sandbox_cli(*verb, "../victim"))
        assert "no such sandbox: '../victim'" in line
        assert os.path.exists(os.path.join(victim, "precious"))
    finally:
        os.unlink(os.path.join(victim, "precious"))
        os.rmdir(victim)


def test_a_network_name_is_never_a_path(tmp_path):
    outside = os.path.join(os.environ["SANDBOX_STATE_DIR"], "x.json")
    with open(outside, "w") as f:
        f.write('{"name": "x", "bridge": "lo", "subnet": "10.99.0.0/24"}')
    try:
        assert "no such network: '../x'" in one_line(sandbox_cli("network", "rm", "../x"))
        assert os.path.exists(outside)
    finally:
        os.unlink(outside)


def test_a_job_id_is_never_a_path():
    from jobs.errors import WorkspaceError
    from jobs.workspace import JobDir

    for bad in ("../../etc", "a/b", "", ".hidden"):
        with pytest.raises(WorkspaceError, match="invalid job id"):
            JobDir(bad)


@root
def test_a_forged_queued_job_cannot_copy_a_host_directory_of_the_worker(tmp_path):
    import uuid

    import redis as redis_lib
    from rq import Queue
    from rq.serializers import JSONSerializer

    from jobs import client, store
    from jobs.model import JobSpec, Step

    from .jobs_support import RedisServer, env

    secret = tmp_path / "worker-secret"
    secret.mkdir()
    (secret / "key").write_text("worker's own file\n")
    server = RedisServer().start()
    try:
        conn = redis_lib.Redis.from_url(server.url)
        queue, job_id = f"q-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:12]
        spec = JobSpec(name="forged", image="busybox", workspace=str(secret),
                       steps=(Step("look", "ls /workspace; cat /workspace/key || true"),))
        store.create(conn, job_id, spec, queue, None)  # as a queue writer would, no packed workspace
        Queue(queue, connection=conn, serializer=JSONSerializer).enqueue(client.TASK, job_id,
                                                                          job_id=job_id)
        out = subprocess.run([os.sys.executable, "-m", "sandbox", "worker", "--redis", server.url,
                              "--queue", queue, "--burst"], env=env(), capture_output=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        result = client.wait(client.connect(server.url), job_id, timeout=30)
        logs = b"".join(e.data for e in __import__("jobs.logstream", fromlist=["follow"])
                        .follow(conn, job_id) if e.kind == "out")
        assert result.status == "passed" and b"worker's own file" not in logs
    finally:
        server.stop()


def test_job_file_values_are_shown_as_written(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text('name = "x"\ntimeout = true\n[[steps]]\nname = "s"\nrun = "true"\n')
    line = one_line(sandbox_cli("submit", str(path)))
    assert "timeout: true: expected a duration" in line and "True" not in line


@root
def test_a_directory_import_names_the_entry_it_refuses(tmp_path):
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    os.mkfifo(src / "etc" / "fifo")  # made inside, never opened: the import does not hang
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    line = one_line(sandbox_cli("image", "import", str(src), "withdev", timeout=60))
    assert "entry 'null': a device node; accepted: regular files" in line
    assert "archive member" not in line and store_leftovers() == []
