"""The daemon's attach WebSocket carrying a sandbox's pty (``"tty": true``), as a browser
terminal uses it: keystrokes in as binary messages, the screen out, resizes beside.

Driven against a real `sandbox daemon` and a real pty made inside the
sandbox: what the shell sees (its terminal, its size, SIGINT from the
line discipline) is read back from the shell itself.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import unix_connect

from .conftest import MUST_WORK  # noqa: F401 - the suite's conftest, imported once
from .daemon_support import daemon  # noqa: F401 - fixture
from .helpers import wait_for
from .terminal_driver import Terminal
from .test_interactive_cli import COOKED, cooked

pytestmark = pytest.mark.root

SHELL = {"image": "busybox", "command": ["sh"], "tty": True}


class Screen:
    """What one attach WebSocket has shown so far, read until a pattern appears."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.seen = b""
        self.ended: dict | None = None

    def expect(self, pattern: str, timeout: float = 30) -> re.Match:
        regex = re.compile(pattern.encode(), re.M)
        while (found := regex.search(self.seen)) is None:
            try:
                message = self.ws.recv(timeout=timeout)
            except TimeoutError:
                raise AssertionError(f"no {pattern!r} in {timeout}s; saw {self.seen!r}") from None
            if isinstance(message, str):
                self.ended = json.loads(message)
                raise AssertionError(f"ended before {pattern!r}: {self.ended}; saw {self.seen!r}")
            assert message[:1] == b"\x01", message  # a terminal's screen is stdout
            self.seen += message[1:]
        self.seen = self.seen[found.end():]
        return found

    def type(self, text: str) -> None:
        self.ws.send(text.encode())

    def until_end(self, timeout: float = 30) -> dict:
        while True:
            message = self.ws.recv(timeout=timeout)
            if isinstance(message, str):
                return json.loads(message)


def attach(daemon, sid: str, query: str = "") -> object:
    return unix_connect(daemon.socket, f"ws://localhost/v1/sandboxes/{sid}/attach{query}")


def test_the_attach_websocket_carries_the_sandboxs_own_pty(daemon):
    with daemon.unix() as c:
        r = c.post("/v1/sandboxes", params={"start": "true"}, json=SHELL)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        with attach(daemon, sid, "?rows=30&cols=100") as ws:
            screen = Screen(ws)
            screen.type("tty; stty size; echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$\r")
            found = screen.expect(r"^(/dev/pts/\d+)\r\n(\d+ \d+)\r\nsid=(\d+) pid=(\d+)")
            assert found.group(1) == b"/dev/pts/0" and found.group(2) == b"30 100"
            assert found.group(3) == found.group(4)  # the shell leads its session
            ws.send(json.dumps({"resize": {"rows": 40, "cols": 120}}))
            screen.type("stty size\r")
            screen.expect(r"^40 120\r$")
            assert c.post(f"/v1/sandboxes/{sid}/resize",
                          params={"rows": 50, "cols": 132}).status_code == 204
            screen.type("stty size\r")
            screen.expect(r"^50 132\r$")
            # Ctrl-C is a byte: the line discipline inside sends SIGINT to the foreground job
            screen.type("sh -c \"trap 'echo got-int; exit 9' INT; echo waiting; "
                        "while :; do sleep 0.05; done\"\r")
            screen.expect(r"^waiting\r$")
            screen.type("\x03")
            screen.expect(r"got-int\r$")  # after the echoed ^C
            screen.type("echo status=$?\r")
            screen.expect(r"^status=9\r$")
            screen.type("exit 7\r")
            assert screen.until_end()["exit_code"] == 7
        assert c.post(f"/v1/sandboxes/{sid}/wait").json()["exit_code"] == 7
        c.delete(f"/v1/sandboxes/{sid}")


def test_a_session_goes_on_after_its_websocket_closes_and_a_new_one_takes_it_up(daemon):
    with daemon.unix() as c:
        sid = c.post("/v1/sandboxes", params={"start": "true"}, json=SHELL).json()["id"]
        with attach(daemon, sid) as ws:
            screen = Screen(ws)
            screen.type("cd /tmp && echo one > mark && echo typed\r")
            screen.expect(r"^typed\r$")
        with attach(daemon, sid, "?logs=false") as ws:  # the screen from now on
            screen = Screen(ws)
            screen.type("cat /tmp/mark\r")
            screen.expect(r"^one\r$")
            ws.send(json.dumps({"resize": "wide"}))  # not understood: dropped, the session goes on
            screen.type("exit\r")
            assert screen.until_end()["exit_code"] == 0
        c.delete(f"/v1/sandboxes/{sid}")


def test_bad_terminal_requests_say_what_is_wrong(daemon):
    with daemon.unix() as c:
        sid = c.post("/v1/sandboxes", params={"start": "true"},
                     json={"image": "busybox", "command": ["sleep", "60"]}).json()["id"]
        r = c.post(f"/v1/sandboxes/{sid}/resize", params={"rows": 40, "cols": 120})
        assert r.status_code == 409 and "has no terminal to resize" in r.json()["message"]
        c.delete(f"/v1/sandboxes/{sid}", params={"force": "true"})
        sid = c.post("/v1/sandboxes", params={"start": "true"}, json=SHELL).json()["id"]
        r = c.post(f"/v1/sandboxes/{sid}/resize", params={"rows": 0, "cols": 120})
        assert r.status_code == 400 and r.json()["field"] == "rows", r.text
        with pytest.raises(InvalidStatus), attach(daemon, sid, "?rows=40"):
            pass  # refused at the handshake: rows without cols
        r = c.post("/v1/sandboxes", json={**SHELL, "stdin": "text"})
        assert r.status_code == 400 and r.json()["field"] == "stdin"
        c.delete(f"/v1/sandboxes/{sid}", params={"force": "true"})
        assert c.get("/v1/sandboxes", params={"all": "true"}).json() == []


def test_run_it_through_the_daemon_on_a_real_terminal(daemon):
    """`sandbox --host ... run -it`: this terminal raw on the daemon's sandbox's pty, sized as
    this terminal and resized with it; Ctrl-C acts inside; the exit status and the cooked
    terminal come back."""
    term = Terminal(rows=30, cols=100)
    try:
        term.type(f"python3 -m sandbox --host {daemon.host} run -it busybox")
        term.wait_for("/ #")
        term.type("tty; stty size; echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$")
        found = term.wait_re(r"^(/dev/pts/\d+)\n(\d+ \d+)\nsid=(\d+) pid=(\d+)")
        assert found.group(1) == "/dev/pts/0" and found.group(2) == "30 100"
        assert found.group(3) == found.group(4)
        term.type("sh -c \"trap 'echo winch \\$(stty size)' WINCH; trap 'echo got-int; exit 9' INT; "
                  "echo wait''ing; while :; do sleep 0.05; done\"")
        term.wait_re(r"^waiting")
        term.resize(40, 120)  # SIGWINCH to the client, a resize message to the daemon, ...
        term.wait_re(r"^winch 40 120")  # ... SIGWINCH to the foreground job there
        term.send("C-c")  # a byte over the WebSocket: SIGINT from the line discipline inside
        term.wait_re(r"got-int")
        term.type("exit 3")
        term.wait_re(r"^host\$$")
        term.type("echo status=$?")
        term.wait_re(r"^status=3")
        assert cooked(term) == COOKED
    finally:
        term.close()
    with daemon.unix() as c:
        assert c.get("/v1/sandboxes", params={"all": "true"}).json() == []


def test_run_it_through_the_daemon_without_a_terminal_says_so(daemon):
    out = daemon.cli("run", "-it", "busybox", input=b"")
    assert out.returncode == 125 and out.stderr.decode().strip() == (
        "sandbox: error: the input device is not a TTY"), out.stderr
    out = daemon.cli("run", "-t", "--restart", "always", "busybox")
    assert out.returncode == 125 and out.stderr.decode().strip() == (
        "sandbox: error: --restart needs -d (a run in the foreground ends with its terminal)")
    with daemon.unix() as c:
        assert c.get("/v1/sandboxes", params={"all": "true"}).json() == []


def test_a_client_killed_with_sigkill_restores_its_terminal_and_the_daemon_hangs_up(daemon):
    """The client of `run -it` through the daemon dies without a word: its guard restores
    the terminal, and the daemon, its WebSocket gone, lets go of the supervisor's session,
    which hangs the foreground run up (and removes it, as a foreground run)."""
    term = Terminal(rows=30, cols=100)
    pool = ThreadPoolExecutor(1)
    try:
        term.type(f"python3 -m sandbox --host {daemon.host} run -it --name hup busybox")
        term.wait_for("/ #")
        supervisor = int(subprocess.run(["pgrep", "-x", "sandbox-supervi"], capture_output=True,
                                        check=True).stdout.split()[0])
        fds = len(os.listdir(f"/proc/{supervisor}/fd"))
        waiter = pool.submit(lambda: daemon.unix(timeout=120).post("/v1/sandboxes/hup/wait").json())
        wait_for(lambda: len(os.listdir(f"/proc/{supervisor}/fd")) > fds)  # the wait is in
        out = subprocess.run(["pgrep", "-f", "sandbox --host .* run -it --name hup"],
                             capture_output=True)
        os.kill(min(int(p) for p in out.stdout.split()), signal.SIGKILL)  # not its guard
        term.wait_re(r"^host\$$")
        assert cooked(term) == COOKED
    finally:
        term.close()
        pool.shutdown(wait=True)
    ended = waiter.result(60)
    assert ended["exit_code"] == 128 + signal.SIGHUP, ended  # the shell's end on a hangup
    with daemon.unix() as c:  # a foreground run: removed at its end, as here
        wait_for(lambda: c.get("/v1/sandboxes", params={"all": "true"}).json() == [])
