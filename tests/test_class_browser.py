"""Classes in a real browser (tests.browser_support: Debian's chromium, Playwright).

A student's page runs a command in its terminal and sees the output, keeps
its shell across a dropped connection, and another student's token does not
open it; a reset and the TTL remove the sandbox; the teacher starts a class
from the form, sees who is connected with CPU and memory, takes the keyboard
over, extends and ends the class; a resized page tells the daemon its size.
A screenshot of a terminal is saved and kept in docs/console/.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from .browser_support import (  # noqa: F401 - fixtures
    browser,
    shots,
    shots_reach_the_docs,
    signed_in,
    student_page,
    wait_screen,
)
from .console_support import class_name, console  # noqa: F401 - fixture

pytestmark = pytest.mark.root


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
    # the shell has run it (its next prompt is up) before the connection is dropped:
    # keys still on their way would be lost with the connection, not kept
    wait_screen(page, "KEPT=still-here\nroot@student-01")
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


def test_the_teachers_page_starts_a_class_shows_it_and_takes_over(browser, console):
    """The class form, then the teacher's page: who is connected, CPU and memory, the keyboard
    taken over (the student's page says so, their keys go nowhere meanwhile), extend, end."""
    teacher = console.token("teacher", "run")
    name = class_name()
    desk = signed_in(browser, console, teacher, "/console/classes")
    desk.fill("#class-name", name)
    desk.fill("#class-students", "2")
    desk.fill("#class-ttl", "10m")
    desk.click("#create-class")
    links = desk.locator("#made a[href*='/console/student/']")
    links.first.wait_for(timeout=60_000)
    assert links.count() == 2
    page = student_page(browser, console, links.first.get_attribute("href"))
    wait_screen(page, "root@student-01")
    page.click("#terminal")
    page.keyboard.type("timeout 30 sh -c 'while :; do :; done' &")  # some CPU to show
    page.keyboard.press("Enter")
    desk.goto(f"{console.url}/console/classes/{name}")
    seat = desk.locator("tr[data-seat='student-01']")
    seat.locator(".dot.on").wait_for(timeout=30_000)  # connected
    assert desk.locator("tr[data-seat='student-02'] .dot.on").count() == 0
    seat.locator("td.num", has_text=re.compile(r"^[1-9][0-9.]*%$")).wait_for(timeout=30_000)
    assert re.fullmatch(r"[0-9.]+ (KiB|MiB)", seat.locator("td.num").nth(1).inner_text())
    # take over: the teacher's keys run in the student's shell, the student's are dropped
    seat.locator("button.take-over").click()
    desk.locator("#term-status", has_text="connected").wait_for(timeout=30_000)
    page.locator("#term-note", has_text="your teacher has the keyboard").wait_for(timeout=30_000)
    page.click("#terminal")
    page.keyboard.type("echo typed-while-held")
    page.keyboard.press("Enter")
    desk.click("#terminal")
    desk.keyboard.type("echo from-the-teacher")
    desk.keyboard.press("Enter")
    wait_screen(desk, "\nfrom-the-teacher")
    lines = [line.strip() for line in wait_screen(page, "\nfrom-the-teacher").splitlines()]
    assert "typed-while-held" not in lines
    # extend, then end the class: the student's page says the shell ended, nothing is left
    with console.tcp(teacher) as c:
        expires = c.get(f"/v1/classes/{name}").json()["expires"]
    desk.on("dialog", lambda dialog: dialog.accept())
    desk.click("#extend")
    with console.tcp(teacher) as c:
        deadline = time.monotonic() + 30
        while c.get(f"/v1/classes/{name}").json()["expires"] < expires + 1700 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.get(f"/v1/classes/{name}").json()["expires"] >= expires + 1700  # 30 minutes more
    desk.click("#end-class")
    desk.wait_for_url(f"{console.url}/console/classes")
    page.locator("#term-status", has_text="ended").wait_for(timeout=60_000)
    with console.tcp(teacher) as c:
        assert c.get("/v1/classes").json() == []
        assert not [r for r in c.get("/v1/sandboxes?all=true").json() if r["name"].startswith(name)]
    page.context.close()
    desk.context.close()


def test_a_resized_page_tells_the_daemon_its_terminal_size(browser, console):
    """xterm.js fits the terminal to the page; the new size reaches the daemon (today it is
    noted and recorded; on the engine's pty it becomes the shell's window size)."""
    teacher = console.token("teacher", "run")
    name = class_name()
    student = console.make_class(teacher, name, students=1)["students"][0]
    page = student_page(browser, console, student["url"])
    wait_screen(page, "root@student-01")
    seat = f"/v1/classes/{name}/students/student-01"

    def size() -> tuple[int, int]:
        with console.tcp(teacher) as c:
            terminal = c.get(seat).json()["terminal"]
        return terminal["rows"], terminal["cols"]

    deadline = time.monotonic() + 30
    while size() == (24, 80) and time.monotonic() < deadline:  # the page's first fit
        time.sleep(0.2)
    small = size()
    assert small != (24, 80)
    page.set_viewport_size({"width": 1400, "height": 900})
    while size() == small and time.monotonic() < deadline + 30:
        time.sleep(0.2)
    rows, cols = size()
    assert rows > small[0] and cols > small[1]
    page.context.close()
    with console.tcp(teacher) as c:
        c.delete(f"/v1/classes/{name}")


def test_screenshots_reach_the_docs(shots):
    shots_reach_the_docs(shots, ("terminal.png",))
