"""Secrets and parameters given at submit time: who sees them, what shows them masked,
and where their values are (and are not) kept in Redis."""

from __future__ import annotations

import pytest

from jobs import connect, store, wait
from jobs.logstream import follow

from .jobs_support import (  # noqa: F401
    job_file,
    queue,
    redis_url,
    sandbox_cmd,
    workers,
)

pytestmark = pytest.mark.root

SECRET = "tr0ub4dor-and-3"
JOB = """
    name = "secretive"
    image = "host"
    workspace = "ws"
    [params]
    WHO = "nobody"
    [[steps]]
    name = "uses it"
    secrets = ["TOKEN"]
    run = "printf 'token: %s' \\"${TOKEN%-*}\\"; sleep 0.2; echo \\"-${TOKEN##*-}\\"; touch \\"out-$TOKEN.txt\\"; python3 -m pytest -q -p no:cacheprovider --junitxml=report.xml"
    [[steps]]
    name = "does not list it"
    run = "echo \\"[${TOKEN:-unset}] for $WHO\\""
    [results]
    junit = ["report.xml"]
    artifacts = ["out-*.txt"]
"""
SUITE = {"test_it.py": """
    import os, pytest

    def test_skipped_with_the_token():
        pytest.skip("token " + os.environ["TOKEN"])
"""}


def everything_in_redis(conn) -> bytes:
    """Every value of every key, as bytes (strings, hashes, lists, sets, streams)."""
    out = []
    for key in conn.scan_iter(count=1000):
        kind = conn.type(key).decode()
        if kind == "string":
            out.append(conn.get(key) or b"")
        elif kind == "hash":
            out += [k + b"=" + v for k, v in conn.hgetall(key).items()]
        elif kind == "list":
            out += conn.lrange(key, 0, -1)
        elif kind in ("set", "zset"):
            out += list(conn.smembers(key)) if kind == "set" else conn.zrange(key, 0, -1)
        elif kind == "stream":
            out += [b"".join(k + v for k, v in fields.items()) for _, fields in conn.xrange(key)]
    return b"\n".join(out)


def test_a_queued_job_s_secret_is_masked_everywhere_and_gone_from_redis(redis_url, queue, workers,
                                                                         tmp_path):
    conn = connect(redis_url)
    path = job_file(tmp_path, JOB, SUITE)
    submitted = sandbox_cmd("submit", "--redis", redis_url, "--queue", queue, "--secret", "TOKEN",
                            "--param", "WHO=me", path, env={"TOKEN": SECRET})
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[0]
    assert conn.hget(store.key(job_id, "secrets"), "TOKEN") == SECRET.encode()
    held = everything_in_redis(conn)
    assert held.count(SECRET.encode()) == 1  # only in the secrets hash, until a worker takes it

    workers.start()
    result = wait(conn, job_id, timeout=120)
    assert result.status == "passed", result
    assert SECRET.encode() not in everything_in_redis(conn)
    assert not conn.exists(store.key(job_id, "secrets"))
    out = {}
    for event in follow(conn, job_id, follow=False):
        out[event.step] = out.get(event.step, b"") + (event.data if event.kind == "out" else b"")
    assert out["uses it"].startswith(b"token: ***\n")  # printed in two pieces, masked whole
    assert out["does not list it"] == b"[unset] for me\n"
    assert [a.path for a in result.artifacts] == ["out-***.txt"]
    assert store.artifacts(conn, job_id).keys() == {"out-***.txt"}
    (case,) = result.junit.cases
    assert case.outcome == "skipped" and "token ***" in case.message
    shown = sandbox_cmd("jobs", "--redis", redis_url, "logs", job_id)
    assert SECRET not in shown.stdout and "token: ***" in shown.stdout


def test_a_cancelled_queued_job_takes_its_secrets_with_it(redis_url, queue, tmp_path):
    conn = connect(redis_url)
    path = job_file(tmp_path, JOB, SUITE)
    submitted = sandbox_cmd("submit", "--redis", redis_url, "--queue", queue,
                            "--secret", f"TOKEN={SECRET}", path)
    job_id = submitted.stdout.split()[0]
    assert conn.exists(store.key(job_id, "secrets"))
    assert sandbox_cmd("jobs", "--redis", redis_url, "cancel", job_id).returncode == 0
    assert not conn.exists(store.key(job_id, "secrets"))
    assert SECRET.encode() not in everything_in_redis(conn)


def test_an_embedded_job_masks_its_secret_on_the_console(tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n")
    path = job_file(tmp_path, JOB, SUITE)
    ran = sandbox_cmd("submit", "--secret", f"TOKEN=@{secret_file}", path)
    assert ran.returncode == 0, ran.stderr
    assert SECRET not in ran.stdout + ran.stderr
    assert "token: ***" in ran.stdout and "[unset] for nobody" in ran.stdout
    assert "artifact out-***.txt" in ran.stdout


def test_a_secret_given_on_the_command_line_is_hidden_from_ps(tmp_path):
    import signal
    import subprocess
    import sys

    from .jobs_support import env

    path = job_file(tmp_path, """
        name = "slow"
        image = "busybox"
        [[steps]]
        name = "wait"
        secrets = ["TOKEN"]
        run = "echo started; sleep 30"
    """)
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "submit", "--secret",
                             f"TOKEN={SECRET}", path], env=env(), stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line == "started\n":
                break
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            shown = f.read().replace(b"\0", b" ")
        assert SECRET.encode() not in shown and b"--secret TOKEN=***" in shown
    finally:
        proc.send_signal(signal.SIGINT)  # cancels the job cleanly
        proc.wait(30)
        proc.stdout.close()
