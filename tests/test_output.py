"""STDOUT/STDERR capture: separate, live, binary-safe, large, never deadlocked."""

import json
import threading

import pytest

from sandbox import Limits, Mount, Sandbox, SandboxSpec, run

pytestmark = pytest.mark.root


def spec(script, **kw):
    kw.setdefault("limits", Limits(output="256m"))
    return SandboxSpec(image="busybox", command=["sh", "-c", script], **kw)


def test_streams_stay_separate_and_in_order():
    records = []
    r = run(spec("for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.01; done"),
            on_output=records.append)
    assert r.stdout == b"out1\nout2\nout3\n" and r.stderr == b"err1\nerr2\nerr3\n"
    times = [rec.time for rec in records]
    assert times == sorted(times)
    assert [rec.stream for rec in records if rec.data.startswith(b"out")] == ["stdout"] * 3


def test_binary_data_survives():
    r = run(spec("head -c 65536 /dev/urandom > /tmp/b; cat /tmp/b; cat /tmp/b | md5sum >&2"))
    import hashlib

    assert len(r.stdout) == 65536
    assert r.stderr.split()[0].decode() == hashlib.md5(r.stdout).hexdigest()


def test_large_output_from_both_streams_does_not_deadlock():
    r = run(spec("head -c 20000000 /dev/zero & head -c 20000000 /dev/zero >&2; wait"))
    assert len(r.stdout) == 20_000_000 and len(r.stderr) == 20_000_000
    assert r.stdout_bytes == 20_000_000


def test_callback_gets_output_while_the_command_runs(tmp_path):
    """The command waits for a file that only the callback creates: live or it hangs."""
    gate = tmp_path / "gate"
    gate.mkdir()

    def on_output(record):
        if b"ready" in record.data:
            (gate / "go").write_text("1")

    r = run(spec("echo ready; while [ ! -e /gate/go ]; do sleep 0.01; done; echo done",
                 mounts=[Mount(str(gate), "/gate")], limits=Limits(timeout="30s")),
            on_output=on_output)
    assert r.stdout == b"ready\ndone\n" and not r.timed_out


def test_log_file_has_json_lines(tmp_path):
    with Sandbox(spec("echo hi; echo oops >&2")) as sb:
        sb.wait()
        lines = [json.loads(line) for line in sb.dir.log_path.read_text().splitlines()]
    assert {(line["stream"], line["data"]) for line in lines} == {("stdout", "hi\n"), ("stderr", "oops\n")}
    assert all(isinstance(line["time"], float) for line in lines)


def test_stdin_is_fed():
    r = run(SandboxSpec(image="busybox", command=["wc", "-c"], stdin=b"x" * 300_000))
    assert r.stdout.strip() == b"300000"


def test_many_monitors_at_once():
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(spec("seq 1 20000"))))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.stdout.count(b"\n") == 20000 for r in results) and len(results) == 4
