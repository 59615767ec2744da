"""Jobs run in this process (the embedded mode): steps, verdicts, JUnit, artifacts."""

from __future__ import annotations

import pytest

from jobs import Cancel, load_job_file, run_job, run_local
from jobs.artifacts import local_dir

from .jobs_support import ROOT, job_file, sandbox_cmd

pytestmark = pytest.mark.root

FAILING_SUITE = {
    "test_mixed.py": """
        import pytest

        def test_ok():
            assert True

        def test_wrong_sum():
            assert 1 + 1 == 3, "arithmetic is broken"

        @pytest.mark.skip(reason="not today")
        def test_later():
            pass
        """,
}
PYTEST_JOB = """
    name = "pytest"
    image = "host"
    workspace = "ws"
    [[steps]]
    name = "test"
    run = "python3 -m pytest -q -p no:cacheprovider --junitxml=out/report.xml"
    [results]
    junit = ["out/*.xml"]
    artifacts = ["out/report.xml"]
"""


def run_file(path, **kw):
    (spec,) = load_job_file(path)
    events = []
    return run_job(spec, on_event=events.append, **kw), events


def test_steps_share_the_workspace_and_stream_their_output(tmp_path):
    path = job_file(tmp_path, """
        name = "two steps"
        image = "busybox"
        workspace = "ws"
        [[steps]]
        name = "write"
        run = "cat input.txt > made.txt; echo wrote"
        [[steps]]
        name = "read"
        run = "cat made.txt; echo oops >&2"
    """, {"input.txt": "from the host\n"})
    result, events = run_file(path)
    assert result.status == "passed" and [s.status for s in result.steps] == ["passed", "passed"]
    out = [(e.step, e.stream, e.data) for e in events if e.kind == "out"]
    assert out == [("write", "stdout", b"wrote\n"), ("read", "stdout", b"from the host\n"),
                   ("read", "stderr", b"oops\n")]
    assert [e.kind for e in events if e.kind != "out"] == ["step-start", "step-end"] * 2
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert (tmp_path / "ws" / "made.txt").exists() is False  # the host's copy is untouched


def test_the_first_failing_step_stops_the_job_unless_it_may_fail(tmp_path):
    path = job_file(tmp_path, """
        name = "fails"
        image = "busybox"
        [[steps]]
        name = "lint"
        run = "exit 3"
        continue_on_error = true
        [[steps]]
        name = "test"
        run = "false"
        [[steps]]
        name = "deploy"
        run = "echo never"
    """)
    result, _ = run_file(path)
    assert result.status == "failed"
    assert [(s.status, s.exit_code) for s in result.steps] == [("failed", 3), ("failed", 1), ("skipped", None)]
    assert result.error == "step 'test' failed"


def test_junit_failures_are_reported_by_name_and_artifacts_kept(tmp_path):
    path = job_file(tmp_path, PYTEST_JOB, FAILING_SUITE)
    result, _ = run_file(path)
    try:
        assert result.status == "failed"
        junit = result.junit
        assert (junit.tests, junit.failures, junit.skipped, junit.passed) == (3, 1, 1, 1)
        (bad,) = junit.bad_cases
        assert bad.nodeid == "test_mixed::test_wrong_sum" and "arithmetic is broken" in bad.message
        assert [a.path for a in result.artifacts] == ["out/report.xml"]
        assert (local_dir(result.id) / "out" / "report.xml").read_bytes().startswith(b"<?xml")
    finally:
        import shutil

        shutil.rmtree(local_dir(result.id), ignore_errors=True)


def test_a_missing_report_fails_the_job_unless_allowed(tmp_path):
    text = """
        name = "no report"
        image = "busybox"
        [[steps]]
        name = "test"
        run = "true"
        [results]
        junit = ["report.xml"]
    """
    result, _ = run_file(job_file(tmp_path, text))
    assert result.status == "failed" and "no such report" in result.error
    result, _ = run_file(job_file(tmp_path, text + "allow_empty = true\n"))
    assert result.status == "passed"


def test_the_job_timeout_kills_the_step(tmp_path):
    path = job_file(tmp_path, """
        name = "slow"
        image = "busybox"
        timeout = "1s"
        [[steps]]
        name = "sleep"
        run = "echo started; sleep 60"
        [[steps]]
        name = "after"
        run = "true"
    """)
    result, events = run_file(path)
    assert result.status == "timed_out"
    assert result.steps[0].status == "timed_out" and "wall time limit" in result.steps[0].message
    assert result.steps[1].status == "skipped"
    assert any(e.data == b"started\n" for e in events)


def test_a_step_timeout_applies_to_its_step(tmp_path):
    path = job_file(tmp_path, """
        name = "step timeout"
        image = "busybox"
        [[steps]]
        name = "sleep"
        run = "sleep 60"
        timeout = "0.5s"
        continue_on_error = true
        [[steps]]
        name = "after"
        run = "echo ran"
    """)
    result, _ = run_file(path)
    assert [s.status for s in result.steps] == ["timed_out", "passed"]
    assert result.status == "passed"


def test_cancelling_stops_the_running_sandbox(tmp_path):
    (spec,) = load_job_file(job_file(tmp_path, """
        name = "cancel me"
        image = "busybox"
        [[steps]]
        name = "sleep"
        run = "echo started; sleep 60"
    """))
    cancel = Cancel()

    def on_event(event):
        if event.data == b"started\n":
            cancel.set()

    result = run_local(spec, on_event=on_event, cancel=cancel)
    assert result.status == "cancelled" and result.steps[0].status == "cancelled"


def test_the_example_job_runs_from_the_cli_with_junit_totals():
    proc = sandbox_cmd("submit", f"{ROOT}/examples/unit-tests.toml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "JUnit: 1 skipped, 6 passed in" in proc.stdout
    assert "==> [2/2] test:" in proc.stdout and "<== [2/2] test: passed" in proc.stdout
    job_id = proc.stdout.split("job ", 1)[1].split()[0]
    import shutil

    shutil.rmtree(local_dir(job_id), ignore_errors=True)
