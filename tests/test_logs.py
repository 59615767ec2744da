"""Log records, sinks and the output limiter (no root)."""

from sandbox.logs import FileSink, LogRecord, OutputLimiter, read_log
from sandbox.result import Result


def test_records_round_trip_text_and_binary(tmp_path):
    sink = FileSink(tmp_path / "log.jsonl")
    records = [LogRecord("stdout", 1.5, b"hello\n"), LogRecord("stderr", 2.0, b"\xff\x00bin")]
    for r in records:
        sink.write(r)
    sink.note(event="truncated")
    sink.close()
    assert list(read_log(tmp_path / "log.jsonl")) == records


def test_limiter_keeps_exactly_the_limit_and_counts_the_rest():
    lim = OutputLimiter(10)
    assert lim.admit("stdout", b"123456") == b"123456"
    assert lim.admit("stderr", b"abcdef") == b"abcd"
    assert lim.admit("stdout", b"more") == b""
    assert lim.truncated and lim.kept == 10 and lim.total == {"stdout": 10, "stderr": 6}
    unlimited = OutputLimiter(None)
    assert unlimited.admit("stdout", b"x" * 100) == b"x" * 100 and not unlimited.truncated


def test_result_messages():
    base = dict(id="x", exit_code=137, signal=9, started_at=0, ended_at=1, duration=1)
    oom = Result(**base, oom_killed=True, peak_memory=64 << 20, limits={"memory": 64 << 20})
    assert oom.cause == "oom_killed"
    assert oom.limit_message() == "killed: memory limit 64 MiB exceeded (peak 64 MiB)"
    timed = Result(**base, timed_out=True, limits={"timeout": 1.0})
    assert timed.limit_message() == "killed: wall time limit 1s exceeded" and timed.cause == "timed_out"
    ok = Result(id="x", exit_code=0, signal=None, started_at=0, ended_at=1, duration=1)
    assert ok.ok and ok.limit_message() is None and ok.cause == "exited"
    assert "exit 0" in ok.summary() and "stdout" not in ok.to_dict()
