"""The CLI as a client of the daemon: each verb run both ways prints the same and exits the same."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime

import pytest

from .daemon_support import Daemon, daemon, local_cli, wait_status  # noqa: F401 - fixture
from .helpers import wait_for
from .jobs_support import env, job_file, queue, redis_url, workers  # noqa: F401 - fixtures

pytestmark = pytest.mark.root


def same(daemon, *args: str, input: bytes | None = None, normalize=lambda b: b):
    """Run a verb here and through the daemon; assert the same output and status; the local run."""
    here = local_cli(*args, input=input)
    there = daemon.cli(*args, input=input)
    assert (there.returncode, normalize(there.stdout), normalize(there.stderr)) == \
        (here.returncode, normalize(here.stdout), normalize(here.stderr)), args
    return here


def times(data: bytes) -> bytes:
    """Durations, sizes and times vary between two runs: blank them."""
    data = re.sub(rb"\d+(\.\d+)?(ms|s|m|h)\b", b"<t>", data)
    data = re.sub(rb"\b[0-9a-f]{12}\b", b"<id>", data)
    return re.sub(rb"\d+(\.\d+)? (B|KiB|MiB|GiB)", b"<size>", data)


def test_run(daemon):
    r = same(daemon, "run", "busybox", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3 and r.stdout == b"out\n"
    assert same(daemon, "run", "--memory", "lots", "busybox", "--", "true").returncode == 125
    assert same(daemon, "run", "busybox", "--", "no-such-command").returncode == 127
    assert same(daemon, "run", "--name", "bad/name", "busybox", "--", "true").returncode == 125
    assert same(daemon, "run", "-v", "rel:/x", "--", "busybox", "true").returncode != 0
    r = same(daemon, "run", "--timeout", "1s", "--stats", "busybox", "--", "sleep", "5",
             normalize=times)
    assert r.returncode == 137 and b"wall time limit" in r.stderr
    r = same(daemon, "run", "-i", "busybox", "--", "sh", "-c", "cat; echo end", input=b"in\n")
    assert r.stdout == b"in\nend\n"
    r = same(daemon, "run", "-e", "A=1", "-w", "/tmp", "--hostname", "h1", "busybox", "--",
             "sh", "-c", "echo $A $(pwd) $(hostname)")
    assert r.stdout == b"1 /tmp h1\n"


def test_ctrl_c_is_forwarded(daemon):
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "busybox", "--", "sh", "-c",
                             "echo up; sleep 60"], env=dict(daemon.env, SANDBOX_HOST=daemon.host),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(2)
    assert proc.wait(30) == 130
    proc.stdout.close()
    proc.stderr.close()
    with daemon.unix() as c:
        wait_for(lambda: c.get("/v1/sandboxes").json() == [])


def test_ps_logs_rm_of_a_running_sandbox(daemon):
    same(daemon, "ps")
    holder = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "--name", "held", "busybox",
                               "--", "sh", "-c", "echo hello; sleep 60"], env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"hello\n"
        assert same(daemon, "ps", "-q").stdout.strip()
        same(daemon, "ps", normalize=lambda b: re.sub(rb"\d+s ago", b"<ago>", b))
        assert same(daemon, "logs", "held").stdout == b"hello\n"
        r = same(daemon, "rm", "held")
        assert r.returncode == 125 and b"is running" in r.stderr
        assert same(daemon, "rm", "no-such").returncode == 125
        removed = daemon.cli("rm", "-f", "held")
        assert removed.returncode == 0 and removed.stdout.strip()
    finally:
        try:
            holder.wait(30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        holder.stdout.close()
        holder.stderr.close()
    assert holder.returncode == 137


def test_logs_since_and_timestamps_both_ways(daemon):
    """`logs --timestamps` and `--since` (a time, a duration ago, the future, nonsense) of a
    detached sandbox print the same through the daemon as here."""
    made = local_cli("run", "-d", "--name", "stamped", "busybox", "--", "sh", "-c",
                     "echo one; echo err >&2; sleep 1.2; echo two")
    assert made.returncode == 0, made.stderr
    try:
        wait_for(lambda: b"two" in local_cli("logs", "stamped").stdout)
        stamped = same(daemon, "logs", "--timestamps", "stamped")
        lines = stamped.stdout.decode().splitlines()
        assert [line.split()[1] for line in lines] == ["one", "two"]
        assert re.fullmatch(rb"\d{4}-\d\d-\d\dT[0-9:.]+Z err\n", stamped.stderr)
        two_at = datetime.strptime(lines[1].split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert same(daemon, "logs", "--since", f"{two_at.timestamp():.6f}", "stamped").stdout == b"two\n"
        assert same(daemon, "logs", "--since", "1h", "stamped").stdout == b"one\ntwo\n"
        assert same(daemon, "logs", "--since", str(time.time() + 60), "stamped").stdout == b""
        assert same(daemon, "logs", "--since", "yesterday", "stamped").returncode == 125
    finally:
        local_cli("rm", "-f", "stamped")


def test_images_and_networks(daemon):
    same(daemon, "images")
    same(daemon, "image", "inspect", "busybox")
    assert same(daemon, "image", "inspect", "nope:1").returncode == 125
    assert same(daemon, "rmi", "nope:1").returncode == 125
    assert local_cli("network", "create", "clinet").returncode == 0
    try:
        same(daemon, "network", "ls")
    finally:
        out = daemon.cli("network", "rm", "clinet")
    assert out.returncode == 0 and out.stdout == b"removed clinet\n"
    assert same(daemon, "network", "rm", "clinet").returncode == 125


def test_verbs_without_a_remote_form_say_so(daemon):
    out = daemon.cli("image", "prune")
    assert out.returncode == 125
    assert out.stderr == (b"sandbox: error: `sandbox image prune` does not go through a daemon yet: "
                          b"run it without SANDBOX_HOST/--host, on the daemon's host\n")


def image_ids(data: bytes) -> bytes:
    """An image id varies with the time it was made: blanked."""
    return re.sub(rb"sha256:[0-9a-f]{64}", b"<image>", data)


def rootfs_tar(path, members: dict[str, bytes], *, links: dict[str, str] | None = None) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return str(path)


def test_tag_both_ways(daemon):
    try:
        r = same(daemon, "tag", "busybox", "remote-tag:1")
        assert r.returncode == 0 and r.stdout.startswith(b"tagged sha256:")
        assert b"remote-tag" in daemon.cli("images").stdout
        assert same(daemon, "tag", "nope:1", "remote-tag:2").returncode == 125
        assert same(daemon, "tag", "busybox", "Bad Name!").returncode == 125
    finally:
        local_cli("rmi", "remote-tag:1")


def test_import_of_a_tarball_both_ways(daemon, tmp_path):
    good = rootfs_tar(tmp_path / "rootfs.tar.gz", {"bin/hello": b"#!/bin/sh\necho hi\n",
                                                   "etc/motd": b"imported\n"})
    try:
        r = same(daemon, "image", "import", good, "imported:1", "--replace", normalize=image_ids)
        assert r.returncode == 0 and r.stdout.startswith(b"imported imported:1 sha256:"), r
        r = same(daemon, "image", "import", good, "imported:1", normalize=image_ids)
        assert r.returncode == 125 and b"already exists" in r.stderr
        with open(good, "rb") as f:
            data = f.read()
        r = same(daemon, "image", "import", "-", "imported:2", "--replace", input=data,
                 normalize=image_ids)
        assert r.returncode == 0, r
        history = daemon.cli("image", "history", "imported:1")  # refused: shown the same either way
        assert history.returncode == 125
        inspected = json.loads(local_cli("image", "inspect", "imported:1").stdout)[0]
        assert "sandbox image import rootfs.tar.gz" in json.dumps(inspected)
        assert same(daemon, "image", "import", str(tmp_path / "nope.tar"), "imported:3").returncode == 125
        assert same(daemon, "image", "import", "/dev/null", "imported:3").returncode == 125
    finally:
        local_cli("rmi", "imported:1", "imported:2")
    for name, evil in (("dotdot", {"../escaped": b"x"}), ("absolute", {"/abs-escaped": b"x"})):
        bad = rootfs_tar(tmp_path / f"{name}.tar.gz", evil)
        r = same(daemon, "image", "import", bad, f"evil-{name}:1")
        assert r.returncode == 125 and r.stderr.count(b"\n") == 1, r
    bad = rootfs_tar(tmp_path / "through-link.tar.gz", {"out/escaped": b"x"}, links={"out": str(tmp_path)})
    try:  # the link is kept as a link; what goes "through" it stays in the image
        same(daemon, "image", "import", bad, "evil-link:1", "--replace", normalize=image_ids)
    finally:
        local_cli("rmi", "evil-link:1")
    assert not (tmp_path / "escaped").exists() and not os.path.exists("/abs-escaped")
    assert b"evil" not in daemon.cli("images").stdout


def test_build_dry_run_both_ways(daemon, tmp_path):
    (tmp_path / "Sandboxfile").write_text("FROM busybox\nARG V=1\nENV V=$V\nRUN echo $V\n"
                                          "COPY a.txt /a\n")
    (tmp_path / "a.txt").write_text("a\n")
    r = same(daemon, "build", "--dry-run", "--build-arg", "V=2", str(tmp_path))
    assert r.returncode == 0 and b"run [" in r.stdout and b"V=2" in r.stdout, r
    (tmp_path / "Bad").write_text("FROM busybox\nRUN\nNOPE x\n")
    r = same(daemon, "build", "--dry-run", "-f", str(tmp_path / "Bad"), str(tmp_path))
    assert r.returncode == 125 and b"Bad" in r.stderr, r
    r = same(daemon, "build", "--dry-run", "-f", str(tmp_path / "missing"), str(tmp_path))
    assert r.returncode == 125, r
    assert same(daemon, "build", "--dry-run", str(tmp_path / "no-context")).returncode == 125


def test_commit_both_ways(daemon):
    holder = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "--name", "to-commit",
                               "busybox", "--", "sh", "-c", "echo changed > /made; echo up; sleep 60"],
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"up\n"
        r = same(daemon, "commit", "-m", "by a test", "to-commit", "committed:1", normalize=image_ids)
        assert r.returncode == 0 and r.stdout.startswith(b"committed to-commit as committed:1 "), r
        assert same(daemon, "commit", "no-such", "committed:2").returncode == 125
        ran = daemon.cli("run", "committed:1", "--", "cat", "/made")
        assert ran.stdout == b"changed\n"
    finally:
        local_cli("rm", "-f", "to-commit")
        holder.wait(30)
        holder.stdout.close()
        holder.stderr.close()
        local_cli("rmi", "committed:1")


def test_submit_in_process(daemon, tmp_path):
    path = job_file(tmp_path, """
        name = "both ways"
        image = "busybox"
        workspace = "ws"
        [[steps]]
        name = "show"
        run = "cat data.txt; echo to-stderr >&2"
        [results]
        artifacts = ["data.txt"]
    """, {"data.txt": "from the workspace\n"})
    r = same(daemon, "submit", path, normalize=times)
    assert r.returncode == 0 and b"from the workspace" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[steps]]\nname = "s"\nrun = "true"\ntimeout = "soon"\n')
    r = same(daemon, "submit", str(bad))
    assert r.returncode == 125 and b"steps[0].timeout" in r.stderr


SECRET = "hunter2-not-for-logs"
PARAMETERIZED = """
    name = "parameterized"
    image = "busybox"
    [params]
    GREETING = "hello"
    [[steps]]
    name = "show"
    run = "echo $GREETING; echo token=$TOKEN"
    secrets = ["TOKEN"]
"""


def test_submit_with_a_param_and_a_secret(daemon, tmp_path):
    secret = tmp_path / "token"
    secret.write_text(SECRET + "\n")
    path = job_file(tmp_path, PARAMETERIZED)
    r = same(daemon, "submit", "--param", "GREETING=bonjour", "--secret", f"TOKEN=@{secret}", path,
             normalize=times)
    assert r.returncode == 0 and b"bonjour\ntoken=***\n" in r.stdout, r
    r = same(daemon, "submit", "--secret", f"TOKEN={SECRET}", path, normalize=times)
    assert r.returncode == 0 and b"hello\ntoken=***\n" in r.stdout, r
    for bad in (("--param", "NOPE=1", "--secret", "TOKEN=x"), ("--param", "bad", "--secret", "TOKEN=x"),
                ("--secret", "TOKEN="), ("--secret", "OTHER=x"), ()):
        r = same(daemon, "submit", *bad, path)
        assert r.returncode == 125 and r.stderr.count(b"\n") == 1, (bad, r)
    with daemon.unix() as c:
        for job in c.get("/v1/jobs").json():
            shown = c.get(f"/v1/jobs/{job['id']}").text + c.get(f"/v1/jobs/{job['id']}/log/text").text
            assert SECRET not in shown and "token=***" in shown
    assert SECRET.encode() not in daemon.log.read_bytes()


def test_the_api_refuses_params_and_secrets_as_the_cli_does(daemon, tmp_path):
    job = ("job.toml", PARAMETERIZED.encode())
    cases = (([("param", "NOPE=1"), ("secret", "TOKEN=x")],
              "job.toml: params: --param NOPE=1: no such parameter (declared: GREETING; add NOPE "
              "under [params] with a default)"),
             ([("param", "bad"), ("secret", "TOKEN=x")],
              "--param bad: expected NAME=VALUE, NAME of letters, digits and _"),
             ([("secret", SECRET)], "--secret: expected NAME=VALUE, NAME of letters, digits and _ "
              "(the value is not shown)"))
    with daemon.unix() as c:
        for fields, message in cases:
            r = c.post("/v1/jobs", files={"job": job}, data=dict(fields))
            assert (r.status_code, r.json()["message"]) == (400, message), r.text
            assert SECRET not in r.text
        assert c.get("/v1/jobs").json() == []  # nothing half-made
        made = c.post("/v1/jobs", files={"job": job}, data={"secret": f"TOKEN={SECRET}"})
        assert made.status_code == 201 and SECRET not in made.text
        job_id = made.json()["jobs"][0]["id"]
        assert wait_status(c, job_id)["status"] == "passed"
        assert "token=***" in c.get(f"/v1/jobs/{job_id}/log/text").text


def test_jobs_verbs_through_redis(tmp_path, needs_root, redis_url, queue, workers, monkeypatch):
    monkeypatch.setenv("SANDBOX_REDIS_URL", redis_url)
    d = Daemon(tmp_path, redis=redis_url).start()
    try:
        workers.start()  # not --burst: it would exit if it looked before the job was queued
        path = job_file(tmp_path, """
            name = "queued"
            image = "busybox"
            [[steps]]
            name = "hi"
            run = "echo queued-output"
        """)
        sub = d.cli("submit", "--queue", queue, "--follow", path)
        assert sub.returncode == 0, sub.stderr
        job_id = sub.stdout.split()[0].decode()
        assert b"queued-output" in sub.stdout
        for args in (("jobs", "show", job_id), ("jobs", "logs", job_id), ("jobs", "wait", job_id),
                     ("jobs", "show", "--json", job_id), ("jobs", "cancel", job_id),
                     ("jobs", "show", "nope")):
            here = local_cli(*args[:1], "--redis", redis_url, *args[1:])
            there = d.cli(*args)
            assert (there.returncode, there.stdout, there.stderr) == \
                (here.returncode, here.stdout, here.stderr), args
        assert job_id.encode() in d.cli("jobs", "list").stdout
    finally:
        assert d.stop() == 0, d.log.read_text()


def test_a_queued_job_s_secret_param_and_service_both_ways(tmp_path, needs_root, redis_url, queue,
                                                          workers, monkeypatch):
    monkeypatch.setenv("SANDBOX_REDIS_URL", redis_url)
    d = Daemon(tmp_path, redis=redis_url).start()
    try:
        workers.start()  # not --burst: one that starts before the submit would find no job and quit
        path = job_file(tmp_path, PARAMETERIZED + """
            [services.echoer]
            command = "echo service-says-hi; echo service-err >&2; exec sleep 600"
            ready = "true"
        """)
        sub = d.cli("submit", "--queue", queue, "--follow", "--param", "GREETING=hola",
                    "--secret", f"TOKEN={SECRET}", path)
        assert sub.returncode == 0, sub.stderr
        job_id = sub.stdout.split()[0].decode()
        assert b"hola\ntoken=***\n" in sub.stdout and SECRET.encode() not in sub.stdout
        for args in (("jobs", "logs", job_id), ("jobs", "logs", job_id, "--service", "echoer"),
                     ("jobs", "logs", job_id, "--service", "nope"), ("jobs", "show", "--json", job_id)):
            here = local_cli(*args[:1], "--redis", redis_url, *args[1:])
            there = d.cli(*args)
            assert (there.returncode, there.stdout, there.stderr) == \
                (here.returncode, here.stdout, here.stderr), args
            assert SECRET.encode() not in here.stdout + here.stderr
        shown = d.cli("jobs", "logs", job_id, "--service", "echoer")
        assert (shown.stdout, shown.stderr) == (b"service-says-hi\n", b"service-err\n")
        assert b"token=***" in d.cli("jobs", "logs", job_id).stdout
        with d.unix() as c:
            text = c.get(f"/v1/jobs/{job_id}/log/text", params={"service": "echoer"}).text
        assert text == "service-says-hi\nservice-err\n"
    finally:
        assert d.stop() == 0, d.log.read_text()
    assert SECRET.encode() not in d.log.read_bytes()


#: A service that says when it starts and ends with 3 on SIGTERM.
SERVICE = "echo up; trap 'echo down; exit 3' TERM; while :; do sleep 0.05; done"


def lifecycle_script(cli) -> list:
    """`run -d` and the verbs on it, through ``cli``: each verb's (status, stdout, stderr)."""
    steps = [
        ("run", "-d", "--name", "svc", "busybox", "--", "sh", "-c", SERVICE),
        ("exec", "svc", "sh", "-c", "echo out; echo err >&2; exit 4"),
        ("exec", "-i", "svc", "sh", "-c", "cat; echo end"),
        ("exec", "-e", "A=1", "-w", "/tmp", "-u", "1:2", "svc", "sh", "-c", "echo $A $(pwd) $(id -u):$(id -g)"),
        ("exec", "svc", "no-such-command"),
        ("exec", "svc"),
        ("kill", "-s", "NOPE", "svc"),
        ("stop", "-t", "10", "svc"),
        ("wait", "svc"),
        ("exec", "svc", "true"),
        ("ps", "-a"),
        ("start", "svc"),
        ("restart", "-t", "10", "svc"),
        ("kill", "svc"),
        ("wait", "svc"),
        ("logs", "svc"),
        ("stop", "svc", "no-such"),
        ("stop", "no-such"),
        ("restart", "no-such"),
        ("wait", "no-such"),
        ("kill", "no-such"),
        ("rm", "svc"),
        ("run", "-d", "--rm", "--restart", "always", "busybox", "true"),
        ("run", "-d", "--restart", "sometimes", "busybox", "true"),
        ("run", "--restart", "always", "busybox", "true"),
        ("run", "--log-stdin", "busybox", "true"),
        ("run", "-d", "--name", "bad", "busybox", "no-such-command"),
        ("ps", "-a"),
        ("rm", "bad"),
        ("run", "-d", "--rm", "--name", "once", "busybox", "sh", "-c", "exit 5"),
    ]
    out = []
    for args in steps:
        r = cli(*args, input=b"in\n" if args[:2] == ("exec", "-i") else None)
        out.append((args, r.returncode, times(r.stdout), times(r.stderr)))
        if args[0] == "run" and "up" in " ".join(args):  # the service runs: its first line came
            wait_for(lambda: b"up" in local_cli("logs", "svc").stdout)
        if args[0] in ("start", "restart"):  # its run has begun: the next verb acts on it
            runs = 2 if args[0] == "start" else 3
            wait_for(lambda runs=runs: local_cli("logs", "svc").stdout.count(b"up") >= runs)
    wait_for(lambda: b"once" not in local_cli("ps", "-a").stdout)  # --rm: gone at its end
    return out


def test_detached_sandboxes_and_their_verbs_both_ways(daemon):
    """`run -d`, `exec`, `stop`, `start`, `restart`, `kill`, `wait`, `logs`, `rm` through the
    daemon print and exit exactly as embedded (ids and times blanked)."""
    try:
        here = lifecycle_script(local_cli)
        there = lifecycle_script(daemon.cli)
    finally:
        local_cli("rm", "-f", "svc", "bad", "once")
    for local, remote in zip(here, there):
        assert remote == local
    statuses = {" ".join(args): status for args, status, _out, _err in here}
    assert statuses["exec svc sh -c echo out; echo err >&2; exit 4"] == 4
    assert statuses["exec svc no-such-command"] == 127
    assert statuses["wait svc"] == 137  # the last wait: after the kill
    assert [s for a, s, _o, _e in here if a[:2] == ("stop", "-t")] == [0]
    assert here[8][2] == b"3\n"  # the first wait: the service's own end on SIGTERM
    assert here[2][2] == b"in\nend\n" and here[3][2] == b"1 /tmp 1:2\n"
