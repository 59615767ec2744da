"""A long-lived sandbox that runs one command after another: the fixtures' object.

The sandbox's own command is a small POSIX-shell *agent* (so any image with
``/bin/sh`` will do, busybox included). Commands reach it through a host
directory bind-mounted read-write at /run/pytest-sandbox: for command N the
parent writes ``N/cmd`` and ``N/in`` there and a line ``N`` to the agent's
stdin; the agent runs ``sh N/cmd`` with its output in ``N/out`` and
``N/err`` and answers ``done N STATUS`` on its stdout. Files, processes and
/tmp persist between commands, as in one container; everything is gone
after ``close()``. ``spawn()`` starts a program on a terminal of its own in
the same sandbox (``sandbox exec -t``), for tests of interactive programs.
"""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable

from sandbox import Mount, Result, Sandbox, SandboxError, SandboxSpec, Spawned

EXCHANGE = "/run/pytest-sandbox"
AGENT = f"""
d={EXCHANGE}
while read -r n; do
  (cd "$(cat "$d/$n/cwd")" && exec sh "$d/$n/cmd") <"$d/$n/in" >"$d/$n/out" 2>"$d/$n/err"
  echo "done $n $?"
done
"""
POLL = 0.05


def exchange_mount(directory: str) -> Mount:
    return Mount(directory, EXCHANGE, read_only=False)


class SandboxSession:
    """One running sandbox; ``run()`` commands in it, read and write its files."""

    def __init__(self, spec: SandboxSpec, exchange: str, *,
                 on_result: Callable[[Result], None] = lambda _result: None) -> None:
        """Start the sandbox; ``on_result`` is called with the Result of every ``run``."""
        self.spec = spec
        self._exchange = exchange
        self._on_result = on_result
        self._replies: queue.Queue[str] = queue.Queue()
        self._partial = b""
        self._count = 0
        self._dead: str | None = None
        self._spawned: list[Spawned] = []
        stdin_r, self._stdin = os.pipe2(os.O_CLOEXEC)
        self.sandbox = Sandbox(spec, on_output=self._on_output, stdin_fd=stdin_r, log_file=False)
        try:
            self.sandbox.__enter__()
        finally:
            os.close(stdin_r)

    @property
    def id(self) -> str:
        return self.sandbox.id

    def _on_output(self, record) -> None:
        """Runs in the sandbox's monitor thread: split the agent's stdout into lines."""
        if record.stream != "stdout":
            return
        self._partial += record.data
        *lines, self._partial = self._partial.split(b"\n")
        for line in lines:
            self._replies.put(line.decode("utf-8", "replace"))

    def run(self, command: str | list[str], *, input: bytes | str | None = None,
            timeout: float | None = None, cwd: str | None = None,
            env: dict[str, str] | None = None) -> Result:
        """Run ``command`` (a shell string, or a list of arguments) and wait for it.

        On ``timeout`` (seconds) the whole sandbox is killed: the Result says
        ``timed_out`` and later calls raise SandboxError.
        """
        if self._dead:
            raise SandboxError(f"sandbox {self.id} has ended ({self._dead}); make a new one")
        script = command if isinstance(command, str) else shlex.join(command)
        if env:
            script = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()) + script
        number = self._send(script, input, cwd or self.spec.workdir or "/")
        started = time.time()
        code = self._wait_for(number, timeout)
        ended = time.time()
        result = self._result(number, code, started, ended, timeout)
        self._on_result(result)
        return result

    def _send(self, script: str, data: bytes | str | None, cwd: str) -> int:
        self._count += 1
        path = os.path.join(self._exchange, str(self._count))
        os.mkdir(path, 0o777)
        os.chmod(path, 0o777)
        data = data.encode() if isinstance(data, str) else (data or b"")
        for name, content in (("cmd", script.encode()), ("in", data), ("cwd", cwd.encode())):
            with open(os.path.join(path, name), "wb") as f:
                f.write(content)
        os.write(self._stdin, f"{self._count}\n".encode())
        return self._count

    def _wait_for(self, number: int, timeout: float | None) -> int | None:
        """The command's exit status, or None when it (or the sandbox) was killed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                line = self._replies.get(timeout=POLL)
            except queue.Empty:
                if self._ended():
                    self._dead = self._why_ended()
                    return None
                if deadline is not None and time.monotonic() > deadline:
                    self._dead = f"killed: command timeout {timeout}s exceeded"
                    self.sandbox.kill()
                    self.sandbox.wait()
                    return None
                continue
            parts = line.split()
            if len(parts) == 3 and parts[:2] == ["done", str(number)]:
                return int(parts[2])

    def _ended(self) -> bool:
        try:
            self.sandbox.wait(timeout=0)
        except TimeoutError:
            return False
        return True

    def _why_ended(self) -> str:
        result = self.sandbox.wait()
        return result.limit_message() or f"its agent exited with status {result.exit_code}"

    def _result(self, number: int, code: int | None, started: float, ended: float,
                timeout: float | None) -> Result:
        path = os.path.join(self._exchange, str(number))
        out, err = _read(os.path.join(path, "out")), _read(os.path.join(path, "err"))
        shutil.rmtree(path, ignore_errors=True)
        timed_out = code is None and (self._dead or "").startswith("killed: command timeout")
        whole = self.sandbox.wait() if code is None else None
        sig = 9 if code is None else (code - 128 if 128 < code < 128 + 65 else None)
        return Result(
            id=self.id, exit_code=137 if code is None else code, signal=sig,
            started_at=started, ended_at=ended, duration=ended - started, stdout=out, stderr=err,
            timed_out=timed_out or bool(whole and whole.timed_out),
            oom_killed=bool(whole and whole.oom_killed),
            peak_memory=whole.peak_memory if whole else None,
            stdout_bytes=len(out), stderr_bytes=len(err),
            limits=self._limits(timeout),
        )

    def _limits(self, timeout: float | None) -> dict:
        """The sandbox's limits, as Result.limits has them; the command's own timeout."""
        limits = self.spec.limits
        return {"memory": limits.memory, "timeout": timeout or limits.timeout,
                "output": limits.output, "pids": limits.pids, "cpus": limits.cpus,
                "disk": limits.disk}

    def spawn(self, command: str | list[str], *, env: dict[str, str] | None = None,
              cwd: str | None = None, user: str | None = None,
              size: tuple[int, int] = (24, 80)) -> Spawned:
        """Start ``command`` (a shell string, or a list of arguments) in this sandbox on a
        terminal of its own, and drive it as pexpect does: ``send``, ``sendline``,
        ``sendcontrol``, ``expect``, ``wait``. It ends with the sandbox, at the latest."""
        if self._dead:
            raise SandboxError(f"sandbox {self.id} has ended ({self._dead}); make a new one")
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        spawned = self.sandbox.spawn(argv, env=env, workdir=cwd, user=user, tty_size=size)
        self._spawned.append(spawned)
        return spawned

    def write_file(self, path: str, data: bytes | str, *, mode: int = 0o644) -> None:
        """Create or replace a file inside the sandbox."""
        quoted = shlex.quote(path)
        result = self.run(f"cat > {quoted} && chmod {mode:o} {quoted}", input=data)
        if result.exit_code != 0:
            raise OSError(f"cannot write {path} in sandbox {self.id}: "
                          f"{result.stderr.decode(errors='replace').strip()}")

    def read_file(self, path: str) -> bytes:
        """The contents of a file inside the sandbox."""
        result = self.run(["cat", "--", path])
        if result.exit_code != 0:
            raise FileNotFoundError(f"cannot read {path} in sandbox {self.id}: "
                                    f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def close(self) -> None:
        """End what was spawned and the agent (stdin closed), then tear the sandbox down."""
        while self._spawned:
            self._spawned.pop().close()
        if self._stdin >= 0:
            os.close(self._stdin)
            self._stdin = -1
        try:
            self.sandbox.wait(timeout=5)
        except TimeoutError:
            self.sandbox.kill()
        finally:
            self.sandbox.destroy()


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        return f.read()


def new_exchange() -> str:
    path = tempfile.mkdtemp(prefix="pytest-sandbox-x-")
    os.chmod(path, 0o777)
    return path
