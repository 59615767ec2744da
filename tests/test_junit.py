"""JUnit reports: parsed through a hardened parser, merged, summarised like pytest (no root)."""

from __future__ import annotations

import os

from jobs.junit import parse_reports

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="{errors}" failures="1" skipped="1" tests="4" time="{time}">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_bad" time="0.2">
  <failure message="AssertionError: assert 1 == 2">def test_bad():
&gt;       assert 1 == 2
E       assert 1 == 2</failure></testcase>
<testcase classname="tests.test_a" name="test_skip" time="0"><skipped message="not here"/></testcase>
{extra}
</testsuite></testsuites>
"""


def report(tmp_path, name, *, errors=0, time="1.5", extra=""):
    (tmp_path / name).write_text(REPORT.format(errors=errors, time=time, extra=extra))


def test_totals_failures_by_name_and_the_headline(tmp_path):
    report(tmp_path, "r.xml", extra='<testcase classname="tests.test_a" name="test_ok2" time="0"/>')
    junit = parse_reports(str(tmp_path), ["r.xml"])
    assert (junit.tests, junit.failures, junit.errors, junit.skipped, junit.passed) == (4, 1, 0, 1, 2)
    assert junit.headline() == "1 failed, 1 skipped, 2 passed in 1.50s"
    (bad,) = junit.bad_cases
    assert bad.nodeid == "tests.test_a::test_bad"
    assert bad.message == "AssertionError: assert 1 == 2" and "assert 1 == 2" in bad.text


def test_reports_are_merged(tmp_path):
    report(tmp_path, "a.xml")
    err = '<testcase classname="t" name="boom"><error message="fixture broke">trace</error></testcase>'
    report(tmp_path, "b.xml", time="2", extra=err)
    junit = parse_reports(str(tmp_path), ["*.xml"])
    assert junit.files == ("a.xml", "b.xml")
    assert junit.headline() == "2 failed, 1 error, 2 skipped, 2 passed in 3.50s"


def test_a_missing_report_is_a_problem_not_an_exception(tmp_path):
    junit = parse_reports(str(tmp_path), ["report.xml"])
    assert junit.tests == 0 and junit.problems == ("report.xml: no such report",)


def test_entity_bombs_are_refused(tmp_path):
    (tmp_path / "r.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><testsuite><testcase name="&b;"/></testsuite>')
    junit = parse_reports(str(tmp_path), ["r.xml"])
    assert junit.tests == 0 and "unreadable JUnit XML" in junit.problems[0]


def test_a_symlink_out_of_the_workspace_is_not_followed(tmp_path):
    outside = tmp_path / "outside.xml"
    report(tmp_path, "outside.xml")
    ws = tmp_path / "ws"
    ws.mkdir()
    os.symlink(outside, ws / "report.xml")
    junit = parse_reports(str(ws), ["report.xml"])
    assert junit.tests == 0 and "not a regular file inside the workspace" in junit.problems[0]
