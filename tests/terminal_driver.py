"""A real terminal for the CLI's interactive tests: a tmux server of the test's own.

``Terminal`` starts tmux on a private socket with a plain bash in one pane
(the suite's environment, this checkout on PYTHONPATH), types into it
(``send``: tmux send-keys), reads what the pane shows (``screen``:
capture-pane) and waits for text there (``wait_for``). ``close`` kills the
server (and everything it runs).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time

import pytest

from .helpers import REPO


class Terminal:
    """One tmux pane running bash, ``rows`` x ``cols``."""

    def __init__(self, rows: int = 30, cols: int = 100) -> None:
        if not shutil.which("tmux"):
            pytest.skip("needs tmux (apt-get install tmux)")
        self.dir = tempfile.mkdtemp(prefix="pytest-sandbox-tmux-")
        self.socket = os.path.join(self.dir, "tmux")
        env = {k: os.environ[k] for k in os.environ if k.startswith("SANDBOX_")}
        # HISTFILE: bash hung up by kill-server would write its history into HOME while
        # close() removes it, and a file made during the removal leaves the directory behind
        env.update(PYTHONPATH=REPO, PS1="host$ ", TERM="xterm", HOME=self.dir, HISTFILE="/dev/null")
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        self._tmux("new-session", "-d", "-x", str(cols), "-y", str(rows),
                   f"env -i PATH={shlex.quote(os.environ['PATH'])} {exports} bash --norc --noprofile")
        self.wait_for("host$")

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, timeout=30)
        if out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {out.stderr.decode().strip()}")
        return out.stdout.decode()

    def send(self, *keys: str) -> None:
        """Keys as tmux names them: text, Enter, C-c, C-p ..."""
        self._tmux("send-keys", "-t", "0", *keys)

    def type(self, line: str) -> None:
        """``line`` as text, then Enter."""
        self._tmux("send-keys", "-t", "0", "-l", line)
        self.send("Enter")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "0")

    def wait_for(self, text: str, timeout: float = 30.0, after: str | None = None) -> str:
        """Wait until ``text`` shows (below the last line holding ``after``, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            shown = screen.rsplit(after, 1)[-1] if after and after in screen else screen
            if text in shown and (after is None or after in screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not show within {timeout}s; the screen:\n{screen}")
            time.sleep(0.05)

    def wait_re(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait until the regular expression ``pattern`` matches the screen; the match (write
        one the command line that is typed cannot match, like ``sid=\\d+``)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            found = re.search(pattern, screen, re.MULTILINE)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} did not match within {timeout}s; the screen:\n"
                                     f"{screen}")
            time.sleep(0.05)

    def prompt_below(self, line: str, prompt: str = "/ #") -> None:
        """Wait until the shell's prompt shows on the line below ``line`` (a regex for a
        whole line). Busybox's line editor asks the terminal where its cursor is each time
        it shows a prompt; detach keys sent before tmux's answer reached the client leave
        the answer to the host's shell, whose prompt then reads ``host$ ;5R``. Shown here,
        the answer was written before the keys, and the client reads it first."""
        self.wait_re(rf"^{line}\n{re.escape(prompt)}")

    def resize(self, rows: int, cols: int) -> None:
        self._tmux("resize-window", "-t", "0", "-x", str(cols), "-y", str(rows))

    def clear(self) -> None:
        self.type("clear")
        time.sleep(0.2)

    def close(self) -> None:
        try:
            self._tmux("kill-server")
        except (AssertionError, subprocess.TimeoutExpired):
            pass
        deadline = time.monotonic() + 10  # the server's processes may still be ending
        while True:
            shutil.rmtree(self.dir, ignore_errors=True)
            if not os.path.exists(self.dir) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
