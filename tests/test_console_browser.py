"""The web console in a real browser: Debian's chromium, driven by Playwright.

A job submitted through the form shows its log lines while they are
printed and its JUnit failures once it ended; a student's page runs a
command in its terminal and sees the output; another student's token does
not open it; a reset and the TTL remove the sandbox. Screenshots of the job
page, the report and a terminal are saved (tests.console_support.
screenshots_dir); docs/console/ holds copies for the README.

Chromium is never downloaded: it is /usr/bin/chromium (scripts/setup.sh).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time

import pytest

from .console_support import class_name, console, screenshots_dir  # noqa: F401 - fixture

pytestmark = pytest.mark.root
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

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


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (scripts/setup.sh installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e .[test])")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return screenshots_dir(tmp_path_factory)


def watched(page):
    """The page, its console messages and errors printed (pytest shows them when a test fails)."""
    page.on("console", lambda message: print(f"console {message.type}: {message.text}"))
    page.on("pageerror", lambda error: print(f"page error: {error}"))
    return page


def signed_in(browser, console, token: str, path: str):
    """A fresh browser context signed in with ``token``, at ``path``."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = watched(context.new_page())
    page.goto(f"{console.url}/console/login#{token}")
    page.wait_for_url(f"{console.url}/console/")
    page.goto(f"{console.url}{path}")
    return page


def workspace(tmp_path) -> str:
    path = tmp_path / "ws.tar.gz"
    data = b"hello from the workspace\n"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("greeting.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path)


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


def student_page(browser, console, url: str):
    context = browser.new_context(viewport={"width": 1000, "height": 600})
    page = watched(context.new_page())
    page.goto(url)
    return page


def screen(page) -> str:
    return page.locator("#terminal .xterm-rows").inner_text()


def wait_screen(page, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = screen(page) if page.locator("#terminal .xterm-rows").count() else ""
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} is not on the terminal: {text!r}")


def test_a_student_types_in_their_terminal_and_only_theirs(browser, console, shots):
    teacher = console.token("teacher", "run")
    name = class_name()
    one, two = console.make_class(teacher, name, students=2)["students"]
    page = student_page(browser, console, one["url"])
    wait_screen(page, "root@student-01")
    assert "#" not in page.url  # the token left the address bar
    page.click("#terminal")
    page.keyboard.type("echo hi")
    page.keyboard.press("Enter")
    lines = [line.strip() for line in wait_screen(page, "\nhi").splitlines()]
    assert "hi" in lines and any(line.endswith("echo hi") for line in lines)
    page.screenshot(path=os.path.join(shots, "terminal.png"))
    # a reload, then a dropped connection: the page connects again, the shell is the same one
    page.keyboard.type("KEPT=still-here")
    page.keyboard.press("Enter")
    sockets = []
    page.route_web_socket("**/terminal", lambda ws: sockets.append((ws, ws.connect_to_server())))
    _drop(page, sockets)
    page.locator("#term-status", has_text="connected").wait_for(timeout=30_000)
    page.click("#terminal")
    page.keyboard.type("echo $KEPT")
    page.keyboard.press("Enter")
    wait_screen(page, "\nstill-here")
    # the second student's token on the first one's page: refused, no terminal
    other = student_page(browser, console, one["url"].split("#")[0] + "#" + two["token"])
    other.locator("#refused").wait_for()
    assert "not yours" in other.locator("#refused").inner_text()
    assert other.locator("#terminal .xterm-rows").count() == 0
    other.context.close()
    page.context.close()
    with console.tcp(teacher) as c:
        c.delete(f"/v1/classes/{name}")


def _drop(page, sockets: list) -> None:
    """Cut the page's terminal connection (routed through Playwright from now on) as a
    network would, and wait for the page to have made a new one."""
    page.reload()  # route_web_socket applies to sockets opened after it: open one through it
    deadline = time.monotonic() + 30
    while not sockets and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    wait_screen(page, "root@student-01")
    page_side, daemon_side = sockets[0]
    page_side.close(code=1011, reason="network trouble")
    daemon_side.close()
    while len(sockets) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(sockets) == 2, "the page did not connect again"


def test_reset_gives_the_student_a_fresh_sandbox(browser, console):
    teacher = console.token("teacher", "run")
    name = class_name()
    student = console.make_class(teacher, name, students=1)["students"][0]
    page = student_page(browser, console, student["url"])
    wait_screen(page, "root@student-01")
    with console.tcp(teacher) as c:
        before = c.get(f"/v1/classes/{name}/students/student-01").json()["sandbox"]
    desk = signed_in(browser, console, teacher, f"/console/classes/{name}")
    desk.on("dialog", lambda dialog: dialog.accept())
    desk.locator("tr[data-seat='student-01'] button.reset").click()
    deadline = time.monotonic() + 30
    after = before
    with console.tcp(teacher) as c:
        while after == before and time.monotonic() < deadline:
            after = c.get(f"/v1/classes/{name}/students/student-01").json()["sandbox"]
            time.sleep(0.2)
        assert after != before
        assert before not in {r["id"] for r in c.get("/v1/sandboxes?all=true").json()}
    # the student's page followed to the new sandbox by itself; the teacher watches it
    wait_screen(page, "root@student-01")
    page.click("#terminal")
    page.keyboard.type("echo after-reset")
    page.keyboard.press("Enter")
    wait_screen(page, "\nafter-reset")
    desk.locator("tr[data-seat='student-01'] button.watch").click()
    wait_screen(desk, "after-reset")
    page.context.close()
    desk.context.close()
    with console.tcp(teacher) as c:
        c.delete(f"/v1/classes/{name}")


def test_at_the_ttl_the_page_says_so_and_the_sandbox_is_gone(browser, console):
    teacher = console.token("teacher", "run")
    name = class_name()
    student = console.make_class(teacher, name, students=1, ttl="8s")["students"][0]
    page = student_page(browser, console, student["url"])
    wait_screen(page, "root@student-01")
    with console.tcp(teacher) as c:
        sandbox = c.get(f"/v1/classes/{name}/students/student-01").json()["sandbox"]
    page.locator("#term-status", has_text="ended").wait_for(timeout=60_000)
    with console.tcp(teacher) as c:
        assert c.get("/v1/classes").json() == []
        assert sandbox not in {r["id"] for r in c.get("/v1/sandboxes?all=true").json()}
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
        assert c.get(f"/v1/sandboxes/{sandbox}").status_code == 404
    page.goto(f"{console.url}/console/images")
    page.locator("#images td", has_text="busybox").first.wait_for()
    page.context.close()


def test_screenshots_reach_the_docs(shots):
    """The screenshots of this run, where the README shows them from (docs/console/)."""
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "console")
    for name in ("job-log.png", "job-report.png", "terminal.png"):
        assert os.path.getsize(os.path.join(shots, name)) > 5000
        if os.environ.get("SANDBOX_UPDATE_DOCS") == "1":
            shutil.copy(os.path.join(shots, name), os.path.join(docs, name))
        assert os.path.exists(os.path.join(docs, name)), f"docs/console/{name} is missing"
