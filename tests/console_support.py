"""Helpers for the console's and the classes' tests: a daemon on TCP, tokens, a terminal client.

The daemon is a real `sandbox daemon` process (tests.daemon_support) that
listens on a loopback port too, as a browser reaches it; tokens get names of
their own per test (they live in the suite's state root) and are revoked at
the end. ``TerminalClient`` is the terminal WebSocket as a page uses it:
raw bytes out, keystrokes in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .daemon_support import Daemon


class ConsoleDaemon(Daemon):
    """A daemon on TCP whose tokens are named per test and revoked at its stop."""

    def __init__(self, tmp_path) -> None:
        super().__init__(tmp_path, tcp=True)
        self.made: list[str] = []

    def token(self, name: str, *scopes: str) -> str:
        unique = f"{name}-{uuid.uuid4().hex[:8]}"
        self.made.append(unique)
        return super().token(unique, *scopes)

    def revoke_all(self) -> None:
        for name in self.made:
            subprocess.run([sys.executable, "-m", "sandbox", "daemon", "token", "rm", name],
                           env=self.env, capture_output=True)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def make_class(self, token: str, name: str, students: int = 2, **options) -> dict:
        body = {"name": name, "students": students, "image": "busybox", **options}
        with self.tcp(token) as c:
            r = c.post("/v1/classes", json=body)
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture
def console(tmp_path, needs_root):
    """A daemon on a private socket and a loopback port; stopped (SIGTERM) at the end."""
    d = ConsoleDaemon(tmp_path).start()
    yield d
    d.revoke_all()
    assert d.stop() == 0, d.log.read_text()


def class_name() -> str:
    return f"c{uuid.uuid4().hex[:8]}"


class TerminalClient:
    """One terminal WebSocket: send keys, read the screen's bytes until something shows."""

    def __init__(self, url: str, token: str | None = None, *, origin: str | None = None,
                 cookie: str | None = None) -> None:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie:
            headers["Cookie"] = cookie
        self.ws = connect(url, additional_headers=headers, origin=origin, open_timeout=30).__enter__()
        self.raw = b""

    @property
    def seen(self) -> bytes:
        """What the terminal showed, lines ending in \\n (a pty ends them in \\r\\n)."""
        return self.raw.replace(b"\r\n", b"\n")

    def send(self, text: str) -> None:
        self.ws.send(text)

    def read_until(self, needle: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} did not show within {timeout}s; seen: {self.seen[-400:]!r}")
            try:
                message = self.ws.recv(timeout=left)
            except TimeoutError:
                continue
            self.raw += message if isinstance(message, bytes) else message.encode()
        return self.seen

    def run(self, command: str, marker: str | None = None, timeout: float = 30) -> bytes:
        """Type a command line; the output up to ``marker`` (echoed by the command after it,
        quoted in two parts so that a pty's echo of the line typed is not taken for it)."""
        marker = marker or f"done-{uuid.uuid4().hex[:6]}"
        start = len(self.seen)
        self.send(f"{command}; echo '{marker[:3]}''{marker[3:]}'\n")
        self.read_until(f"{marker}\n".encode(), timeout)
        return self.seen[start:]

    def wait_closed(self, timeout: float = 30) -> tuple[int | None, str]:
        """(close code, reason) once the daemon closed it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                return (exc.rcvd.code if exc.rcvd else None), (exc.rcvd.reason if exc.rcvd else "")
        raise AssertionError(f"the terminal was not closed within {timeout}s")

    def close(self) -> None:
        self.ws.close()


def refused(url: str, token: str | None = None, **kw) -> bool:
    """Whether the daemon refuses this terminal (before or right at its opening)."""
    try:
        client = TerminalClient(url, token, **kw)
    except InvalidStatus:
        return True
    try:
        code, _reason = client.wait_closed(timeout=10)
        return code == 1008
    finally:
        client.close()


def screenshots_dir(tmp_path_factory) -> str:
    """Where the browser tests save their screenshots: $SANDBOX_TEST_OUTPUT/console, else
    the run's base temp dir (printed by pytest with -v)."""
    base = os.environ.get("SANDBOX_TEST_OUTPUT") or str(tmp_path_factory.getbasetemp())
    path = os.path.join(base, "console-screenshots")
    os.makedirs(path, exist_ok=True)
    return path
