"""The events a sandboxed test sends back (pytest_sandbox.events) and a crash's completion. No root."""

from __future__ import annotations

import warnings

import pytest
from _pytest.subtests import SubtestContext, SubtestReport
from pytest import TestReport

from pytest_sandbox import crash
from pytest_sandbox.events import Event, Recorder, parse_events


class OwnWarning(UserWarning):
    def __init__(self, what: str, code: int) -> None:
        super().__init__(what, code)


def report(when: str, outcome: str = "passed", longrepr=None) -> TestReport:
    return TestReport("t.py::test", ("t.py", 1, "test"), {"test": 1}, outcome, longrepr, when,
                      sections=[("Captured stdout call", "out")], duration=0.5,
                      user_properties=[("answer", "42")])


def subtest(outcome: str = "passed") -> SubtestReport:
    return SubtestReport._new(report("call", outcome), SubtestContext(msg="case", kwargs={"i": 1}),
                              None, None)


def record(config, tmp_path, send) -> list[Event]:
    recorder = Recorder(config, str(tmp_path))
    recorder.started = True
    send(recorder)
    return parse_events(config, (tmp_path / "reports.jsonl").read_bytes())


def test_reports_come_back_of_their_class_with_their_fields(pytestconfig, tmp_path):
    events = record(pytestconfig, tmp_path, lambda r: [
        r.pytest_runtest_logstart(nodeid="t.py::test", location=("t.py", 1, "test")),
        r.pytest_runtest_logreport(report("setup")),
        r.pytest_runtest_logreport(subtest("failed")),
        r.pytest_runtest_logreport(report("call", "skipped", longrepr=("t.py", 3, "why"))),
        r.pytest_runtest_logfinish(nodeid="t.py::test", location=("t.py", 1, "test")),
    ])
    assert [e.kind for e in events] == ["logstart", "report", "report", "report", "logfinish"]
    assert events[0].kwargs == {"nodeid": "t.py::test", "location": ("t.py", 1, "test")}
    setup, sub, call = (e.report for e in events[1:4])
    assert type(setup) is TestReport and setup.sections == [("Captured stdout call", "out")]
    assert setup.user_properties == [("answer", "42")] and setup.location == ("t.py", 1, "test")
    assert isinstance(sub, SubtestReport) and sub.failed
    assert sub.context == SubtestContext(msg="case", kwargs={"i": 1})
    assert call.longrepr == ("t.py", 3, "why")


def test_warnings_come_back_with_their_class_and_place(pytestconfig, tmp_path):
    def warn(recorder):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.warn(OwnWarning("mine", 7))
            warnings.warn("plain text", DeprecationWarning)
        recorder.pytest_warning_recorded(caught[0], "runtest", "t.py::test", None)
        recorder.pytest_warning_recorded(caught[1], "runtest", "t.py::test", ("t.py", 2, "x"))

    own, plain = record(pytestconfig, tmp_path, warn)
    message = own.kwargs["warning_message"]
    assert type(message.message) is OwnWarning and message.message.args == ("mine", 7)
    assert message.category is OwnWarning and message.filename == __file__ and message.lineno
    assert own.kwargs["when"] == "runtest" and own.kwargs["location"] is None
    assert str(plain.kwargs["warning_message"].message) == "plain text"
    assert plain.kwargs["warning_message"].category is DeprecationWarning
    assert plain.kwargs["location"] == ("t.py", 2, "x")


def test_a_warning_of_a_class_that_is_not_here_still_shows(pytestconfig, tmp_path):
    line = (b'{"event": "warning", "when": "runtest", "nodeid": "t.py::test", "location": null, '
            b'"warning_message": {"message": "gone", "message_class": "nowhere:Gone", '
            b'"message_args": ["gone"], "category": "nowhere:Gone", "filename": "t.py", '
            b'"lineno": 3, "line": null}}\n')
    (event,) = parse_events(pytestconfig, line)
    message = event.kwargs["warning_message"]
    assert str(message.message) == "nowhere:Gone: gone" and message.category is UserWarning


def test_a_line_cut_short_ends_the_events_and_unknown_ones_are_skipped(pytestconfig):
    data = (b'{"event": "logstart", "nodeid": "t.py::test", "location": ["t.py", 1, "test"]}\n'
            b'{"event": "from-a-newer-plugin"}\n'
            b'{"event": "report", "report": {"nodeid": "t.py::te')
    assert [e.kind for e in parse_events(pytestconfig, data)] == ["logstart"]


def test_files_of_a_moved_rootdir_are_named_where_they_are_here(pytestconfig, tmp_path):
    events = record(pytestconfig, tmp_path, lambda r: r.pytest_runtest_logreport(
        report("call", "skipped", longrepr=("/workspace/t.py", 3, "why"))))
    data = (tmp_path / "reports.jsonl").read_bytes()
    (moved,) = parse_events(pytestconfig, data, moved=("/workspace", "/home/me/project"))
    assert events[0].report.longrepr[0] == "/workspace/t.py"
    assert moved.report.longrepr == ("/home/me/project/t.py", 3, "why")


class Item:
    nodeid, location, keywords, user_properties = "t.py::test", ("t.py", 1, "test"), {}, []


def reports_of(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.report.when, e.report.outcome) for e in events if e.kind == "report"]


def test_a_crash_after_subtests_fails_the_call_they_were_in():
    start = Event("logstart", {"nodeid": Item.nodeid, "location": Item.location})
    events = [start, Event("report", {"report": report("setup")}),
              Event("report", {"report": subtest()})]
    done = crash.complete(Item(), events, None, reason="it died")
    assert reports_of(done) == [("setup", "passed"), ("call", "passed"), ("call", "failed"),
                                ("teardown", "passed")]
    assert done[-2].report.longrepr == "it died"


def test_a_crash_in_a_rerun_fails_the_attempt_it_ended():
    start = Event("logstart", {"nodeid": Item.nodeid, "location": Item.location})
    first = [start, *(Event("report", {"report": report(when, outcome)}) for when, outcome in
                      (("setup", "passed"), ("call", "rerun"), ("teardown", "passed")))]
    assert len(crash.complete(Item(), first, None)) == len(first) + 2  # the next never started
    second = [*first, start, Event("report", {"report": report("setup")})]
    assert reports_of(crash.complete(Item(), second, None))[-2:] == [("call", "failed"),
                                                                       ("teardown", "passed")]


@pytest.mark.parametrize("whens, missing", [
    ((), "setup"), (("setup",), "call"), (("setup", "call"), "teardown"),
    (("setup", "call", "teardown"), None),
])
def test_the_first_missing_phase_fails(whens, missing):
    events = [Event("report", {"report": report(when)}) for when in whens]
    done = crash.complete(Item(), events, None)
    if missing is None:
        assert done == events
    else:
        assert done[len(events)].report.when == missing and done[len(events)].report.failed
