"""The console as the daemon serves it, over HTTP: pages, files, the session and its guards.

Without a token TCP serves only the login and student pages and the static
files; a token becomes an HttpOnly SameSite=Strict cookie that the API
takes like the header, but a change needs the console's header and a
WebSocket a page of this daemon; every page carries a strict CSP. Also what
the console added to the API: JUnit totals in job listings, re-run, the
sandbox terminal WebSocket.
"""

from __future__ import annotations

import httpx
import pytest

from server.console.routes import vendor_installed

from .console_support import TerminalClient, console, refused  # noqa: F401 - fixture
from .test_daemon_jobs import JOB, workspace_tar

pytestmark = pytest.mark.root


def test_pages_files_and_what_needs_a_token(console):
    with httpx.Client(base_url=console.url) as c:
        assert c.get("/console/").status_code == 303
        assert c.get("/console/").headers["location"] == "/console/login"
        assert c.get("/console/jobs/x").status_code == 303
        assert c.get("/v1/jobs").status_code == 401
        login = c.get("/console/login")
        assert login.status_code == 200 and '<script type="module" src="/console/static/js/login.js">' in login.text
        csp = login.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert f"ws://127.0.0.1:{console.port}" in csp
        assert c.get("/console/student/some-class/student-01").status_code == 200  # signs in from the URL
        js = c.get("/console/static/js/terminal.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert c.get("/console/static/console.css").status_code == 200
        escape = c.get("/console/static/%2e%2e/routes.py")  # a public prefix leads nowhere else
        assert escape.status_code == 404 and b"APIRouter" not in escape.content
    if not vendor_installed():
        pytest.fail("xterm.js is not installed: scripts/setup.sh runs npm ci in server/console/vendor")
    with httpx.Client(base_url=console.url) as c:
        xterm = c.get("/console/vendor/xterm/lib/xterm.mjs")
        assert xterm.status_code == 200 and xterm.headers["content-type"].startswith("text/javascript")
        assert b"export{" in xterm.content.replace(b" ", b"")
        for path in ("/console/vendor/addon-fit/lib/addon-fit.mjs", "/console/vendor/addon-attach/lib/addon-attach.mjs",
                     "/console/vendor/xterm/css/xterm.css"):
            assert c.get(path).status_code == 200, path


def test_the_session_cookie_and_its_guards(console):
    token = console.token("web", "run", "jobs")
    with httpx.Client(base_url=console.url) as c:
        assert c.post("/console/session").status_code == 401
        assert c.post("/console/session", headers={"Authorization": "Bearer nope"}).status_code == 401
        signed = c.post("/console/session", headers={"Authorization": f"Bearer {token}"})
        assert signed.status_code == 200 and signed.json()["name"].startswith("web-")
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert c.get("/console/").status_code == 200  # the cookie signs the pages in
        assert c.get("/v1/jobs").status_code == 200   # and the API
        # a change on the cookie alone needs the console's header (no cross-site form can set it)
        refused_post = c.post("/v1/sandboxes", json={"image": "busybox", "command": ["true"]})
        assert refused_post.status_code == 403 and "X-Sandbox-Console" in refused_post.json()["message"].title()
        made = c.post("/v1/sandboxes?start=true&stdin=true", headers={"X-Sandbox-Console": "1"},
                      json={"image": "busybox", "command": ["/bin/sh", "-i"]})
        assert made.status_code == 201, made.text
        sandbox = made.json()["id"]
        assert c.get(f"/v1/sandboxes/{sandbox}").json()["terminal"] == "pipe"
        session = f"sandbox_console={c.cookies['sandbox_console']}"
        c.post("/console/logout")
        assert c.get("/console/").status_code == 303
    # the terminal WebSocket on the cookie: from a page of this daemon, not from another site
    url = f"{console.ws_url}/v1/sandboxes/{sandbox}/terminal"
    assert refused(url, cookie=session, origin="http://evil.example")
    shell = TerminalClient(url, cookie=session, origin=f"http://127.0.0.1:{console.port}")
    try:
        assert b"typed-here" in shell.run("echo typed-here")
        watcher = TerminalClient(url + "?mode=watch", token)
        watcher.read_until(b"typed-here")  # the tail is replayed to a page that (re)connects
        watcher.close()
    finally:
        shell.close()
    with console.tcp(token) as c:
        assert c.post(f"/v1/sandboxes/{sandbox}/resize?rows=30&cols=100").status_code == 204
        assert c.post(f"/v1/sandboxes/{sandbox}/resize?rows=0&cols=100").status_code == 400
        assert c.delete(f"/v1/sandboxes/{sandbox}?force=true").status_code == 200


def test_job_listings_carry_junit_totals_and_a_job_runs_again(console):
    token = console.token("ci", "jobs")
    with console.tcp(token) as c:
        r = c.post("/v1/jobs", files={"job": ("job.toml", JOB),
                                      "workspace": ("ws.tar.gz", workspace_tar({"in.txt": b"in-ws\n"}))})
        first = r.json()["jobs"][0]["id"]
        from .daemon_support import wait_status

        wait_status(c, first)
        row = next(j for j in c.get("/v1/jobs").json() if j["id"] == first)
        assert '"headline": "1 failed, 1 passed in' in row["junit"]
        again = c.post(f"/v1/jobs/{first}/rerun")
        assert again.status_code == 201, again.text
        second = again.json()["jobs"][0]["id"]
        assert second != first and wait_status(c, second)["status"] == "failed"
        text = c.get(f"/v1/jobs/{second}/log/text").text
        assert "in-ws" in text  # the same workspace
        assert c.post("/v1/jobs/nosuchjob/rerun").status_code == 404
