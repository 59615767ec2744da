"""The web console in a real browser (tests.browser_support: Debian's chromium, Playwright).

A job submitted through the form shows its log lines while they are
printed and its JUnit failures once it ended; the jobs list follows a job
and filters; a sandbox's page follows its output, stops and removes it; a
new shell from the sandboxes page is a terminal that copies and pastes.
Screenshots of the job page and the report are saved and kept in docs/console/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .browser_support import (  # noqa: F401 - fixtures
    browser,
    shots,
    shots_reach_the_docs,
    signed_in,
    wait_screen,
    workspace,
)
from .console_support import console  # noqa: F401 - fixture
from .helpers import wait_for

pytestmark = pytest.mark.root

JOB = """\
name = "browser job"
image = "busybox"
workspace = "ws"
[[steps]]
name = "prepare"
run = "cat greeting.txt"
[[steps]]
name = "test"
run = '''for i in 1 2 3 4 5 6 7 8; do printf '\\033[32mline-%s\\033[0m of the log\\n' $i; sleep 0.5; done
cat > report.xml <<EOF
<testsuite name="t" tests="3" time="0.5"><testcase classname="t" name="test_ok" time="0.1"/><testcase classname="t" name="test_skip" time="0"><skipped/></testcase><testcase classname="t" name="test_bad" time="0.4"><failure message="assert 1 == 2">def test_bad():
&gt;       assert 1 == 2
E       assert 1 == 2</failure></testcase></testsuite>
EOF
exit 1'''
[results]
junit = ["report.xml"]
artifacts = ["report.xml"]
"""


def job_status(console, token: str, job_id: str) -> str:
    with console.tcp(token) as c:
        return c.get(f"/v1/jobs/{job_id}").json()["status"]


def test_a_job_from_the_form_shows_its_live_log_then_its_failures(browser, console, shots, tmp_path):
    token = console.token("ci", "jobs")
    (tmp_path / "job.toml").write_text(JOB)
    page = signed_in(browser, console, token, "/console/submit")
    page.set_input_files("#job-file", str(tmp_path / "job.toml"))
    page.set_input_files("#workspace", workspace(tmp_path))
    page.click("#submit")
    page.wait_for_url("**/console/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    page.locator("#log .l", has_text="line-2 of the log").wait_for(timeout=60_000)
    text = page.locator("#log").inner_text()
    assert "line-8" not in text and job_status(console, token, job_id) == "running"  # live, as printed
    assert "hello from the workspace" in text
    assert "rgb(63, 185, 80)" in page.locator("#log .l", has_text="line-1 of").locator("span span").first.evaluate(
        "e => getComputedStyle(e).color")  # ANSI green
    page.locator("#log-end").wait_for(timeout=60_000)
    assert "job failed" in page.locator("#log-end").inner_text()
    page.screenshot(path=os.path.join(shots, "job-log.png"))
    # the report: pytest's totals, the failure with its message and traceback, failures first
    page.locator("#junit-headline").wait_for()
    assert "1 failed, 1 skipped, 1 passed in 0.50s" in page.locator("#junit-headline").inner_text()
    failure = page.locator("#failures .failure").first
    assert "FAILED t::test_bad" in failure.inner_text() and "assert 1 == 2" in failure.locator("pre").inner_text()
    assert page.locator("#cases tbody tr").first.inner_text().startswith("failed")
    assert page.locator("#artifacts a", has_text="report.xml").count() == 1
    page.locator("#report").screenshot(path=os.path.join(shots, "job-report.png"))
    page.click("#cases th:has-text('Duration')")  # sortable: shortest first
    assert page.locator("#cases tbody tr").first.locator("td").nth(2).inner_text() == "test_skip"
    # the log's tools: sections fold, lines link to themselves, search marks lines
    sections = page.locator("#log details")
    assert sections.count() == 2 and "[2/2] test" in sections.nth(1).locator("summary").inner_text()
    page.locator("#log .l", has_text="line-3 of").locator("a.n").click()
    assert page.url.endswith("#L" + page.locator("#log .l", has_text="line-3 of").get_attribute("id")[1:])
    page.fill("#log-search", "line-5")
    assert page.locator("#log .l.hit").count() == 1
    assert page.locator("#download-log").get_attribute("href") == f"/v1/jobs/{job_id}/log/text"
    # the jobs list shows it with its totals; re-run submits it again, workspace and all
    page.goto(f"{console.url}/console/?status=failed")
    row = page.locator(f"tr[data-job='{job_id}']")
    row.wait_for()
    assert "1 failed, 1 skipped, 1 passed" in row.inner_text() and "daemon" in row.inner_text()
    page.goto(f"{console.url}/console/jobs/{job_id}")
    page.click("#rerun")
    page.wait_for_url(lambda url: job_id not in url)
    page.locator("#log .l", has_text="hello from the workspace").wait_for(timeout=60_000)
    page.click("#cancel")
    page.locator("#log-end").wait_for(timeout=60_000)
    page.context.close()


def test_a_new_shell_from_the_sandboxes_page(browser, console):
    token = console.token("dev", "run")
    page = signed_in(browser, console, token, "/console/sandboxes")
    page.click("#new-shell")
    page.wait_for_url("**/console/sandboxes/*")
    sandbox = page.url.rsplit("/", 1)[1]
    wait_screen(page, "# ")
    page.click("#terminal")
    page.keyboard.type("echo from-the-page")
    page.keyboard.press("Enter")
    wait_screen(page, "\nfrom-the-page")
    page.goto(f"{console.url}/console/sandboxes")
    row = page.locator(f"tr[data-sandbox='{sandbox}']")
    row.wait_for()
    assert "running" in row.inner_text() and "/bin/sh -i" in row.inner_text()
    row.locator("button.danger").click()
    row.wait_for(state="detached", timeout=30_000)
    with console.tcp(token) as c:
        # the row goes when the removal starts; the sandbox is gone once its teardown ends
        wait_for(lambda: c.get(f"/v1/sandboxes/{sandbox}").status_code == 404, timeout=30)
    page.goto(f"{console.url}/console/images")
    page.locator("#images td", has_text="busybox").first.wait_for()
    page.context.close()


def test_copy_and_paste_in_a_terminal(browser, console):
    """Ctrl+Shift+C copies the terminal's selection, Ctrl+Shift+V types the clipboard."""
    token = console.token("dev", "run")
    page = signed_in(browser, console, token, "/console/sandboxes")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.url)
    page.click("#new-shell")
    page.wait_for_url("**/console/sandboxes/*")
    sandbox = page.url.rsplit("/", 1)[1]
    wait_screen(page, "# ")
    page.click("#terminal")
    page.keyboard.type("echo copy-me-42")
    page.keyboard.press("Enter")
    wait_screen(page, "\ncopy-me-42")
    row = page.locator("#terminal .xterm-rows > div", has_text=re.compile(r"^copy-me-42"))
    box = row.bounding_box()
    page.mouse.dblclick(box["x"] + 20, box["y"] + box["height"] / 2)  # selects the word
    page.keyboard.press("Control+Shift+C")
    assert page.evaluate("navigator.clipboard.readText()") == "copy-me-42"
    page.evaluate("navigator.clipboard.writeText('echo pasted-$((6*7))')")
    page.click("#terminal")
    page.keyboard.press("Control+Shift+V")
    page.keyboard.press("Enter")
    assert wait_screen(page, "\npasted-42").count("echo pasted-$((6*7))") == 1  # pasted once
    with console.tcp(token) as c:
        assert c.delete(f"/v1/sandboxes/{sandbox}?force=true").status_code in (200, 204)
    page.context.close()


def test_a_sandboxs_page_follows_its_output_then_stops_and_removes_it(browser, console):
    token = console.token("dev", "run")
    loop = "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done"
    with console.tcp(token) as c:
        r = c.post("/v1/sandboxes?start=true", json={"image": "busybox", "command": ["sh", "-c", loop]})
        assert r.status_code == 201, r.text
        sandbox = r.json()["id"]
    page = signed_in(browser, console, token, "/console/sandboxes")
    page.locator(f"tr[data-sandbox='{sandbox}']", has_text="running").wait_for(timeout=30_000)
    page.goto(f"{console.url}/console/sandboxes/{sandbox}")
    page.locator("#sandbox-log .l", has_text="tick-1").first.wait_for(timeout=30_000)
    seen = page.locator("#sandbox-log .l").count()
    page.locator("#sandbox-log .l", has_text=f"tick-{seen + 3}").wait_for(timeout=30_000)  # live
    page.click("#stop")
    page.locator("#facts dt", has_text="Exit status").wait_for(timeout=30_000)
    assert page.locator("#stop").count() == 0
    page.click("#remove")
    page.wait_for_url(f"{console.url}/console/sandboxes")
    with console.tcp(token) as c:
        # the row goes when the removal starts; the sandbox is gone once its teardown ends
        wait_for(lambda: c.get(f"/v1/sandboxes/{sandbox}").status_code == 404, timeout=30)
    page.context.close()


def test_the_jobs_list_follows_a_job_and_filters(browser, console, tmp_path):
    token = console.token("ci", "jobs")
    page = signed_in(browser, console, token, "/console/")
    page.locator("#jobs").wait_for()
    job = JOB.replace('name = "browser job"', 'name = "listed job"')
    with console.tcp(token) as c:
        r = c.post("/v1/jobs", files={"job": ("job.toml", job), "workspace": ("ws.tar.gz", Path(workspace(tmp_path)).read_bytes())})
        assert r.status_code == 201, r.text
        job_id = r.json()["jobs"][0]["id"]
    row = page.locator(f"tr[data-job='{job_id}']")
    row.wait_for(timeout=30_000)  # shown without a reload
    assert "listed job" in row.inner_text()
    row.locator("span.status.failed").wait_for(timeout=90_000)  # and its end
    assert "1 failed, 1 skipped, 1 passed" in row.inner_text()
    page.select_option("#filter-status", "passed")
    row.wait_for(state="detached", timeout=30_000)
    page.select_option("#filter-status", "")
    page.fill("#filter-name", "listed")
    row.wait_for(timeout=30_000)
    page.fill("#filter-name", "no-such-name")
    row.wait_for(state="detached", timeout=30_000)
    assert "?name=no-such-name" in page.url
    page.context.close()


def test_screenshots_reach_the_docs(shots):
    shots_reach_the_docs(shots, ("job-log.png", "job-report.png"))
