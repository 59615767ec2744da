"""What happened in a sandbox: the Result of one run."""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass, field, fields
from typing import Any

from .logs import DRAIN_ALLOWANCE
from .units import format_duration, format_size


@dataclass(frozen=True)
class Result:
    """Exit status, the cause of the end, output and accounting of one run.

    ``exit_code`` is the command's exit status, or 128+N when signal N ended
    it (as shells and Docker report it). ``cause`` is one of ``exited``,
    ``signaled``, ``oom_killed``, ``timed_out``, ``idle_timeout``, ``output_limit``,
    ``removed``.

    Output: the first ``limits["output"]`` bytes of both streams together are
    kept, the rest counted and dropped (``output_truncated``); the command runs
    on. One that writes DRAIN_ALLOWANCE (64 MiB) more is killed like by any
    other limit (``output_killed``, exit 137). ``removed``: another process
    removed the running sandbox (`sandbox rm -f`).
    """

    id: str
    exit_code: int
    signal: int | None
    started_at: float
    ended_at: float
    duration: float
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    idle_timed_out: bool = False
    oom_killed: bool = False
    output_truncated: bool = False
    output_killed: bool = False
    removed: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    peak_memory: int | None = None
    cpu_time: float | None = None
    cpu_user: float | None = None
    cpu_system: float | None = None
    pids_peak: int | None = None
    pids_limited: bool = False
    setup_time: float | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def cause(self) -> str:
        if self.timed_out:
            return "timed_out"
        if self.idle_timed_out:
            return "idle_timeout"
        if self.oom_killed:
            return "oom_killed"
        if self.output_killed:
            return "output_limit"
        if self.removed:
            return "removed"
        return "signaled" if self.signal else "exited"

    @property
    def signal_name(self) -> str | None:
        if self.signal is None:
            return None
        try:
            return _signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    def limit_message(self) -> str | None:
        """One line saying which limit ended or cut the run, if any."""
        if self.timed_out:
            return f"killed: wall time limit {format_duration(self.limits.get('timeout'))} exceeded"
        if self.idle_timed_out:
            return (f"killed: idle for {format_duration(self.limits.get('idle_timeout'))} "
                    "(no output, no input)")
        if self.oom_killed:
            peak = format_size(self.peak_memory) if self.peak_memory else "unknown"
            return (f"killed: memory limit {format_size(self.limits.get('memory'))} exceeded "
                    f"(peak {peak})")
        if self.removed:
            return "killed: removed by `sandbox rm` while it ran"
        total = self.stdout_bytes + self.stderr_bytes
        if self.output_killed:
            return (f"killed: output limit {format_size(self.limits.get('output'))} exceeded "
                    f"by more than {format_size(DRAIN_ALLOWANCE)} (kept the first "
                    f"{format_size(self.limits.get('output'))} of {format_size(total)})")
        if self.output_truncated:
            return (f"output truncated: kept the first {format_size(self.limits.get('output'))} "
                    f"of {format_size(total)}")
        if self.pids_limited:
            return f"process limit {self.limits.get('pids')} reached (fork failed inside)"
        return None

    def summary(self) -> str:
        """``exit 0 in 12ms, peak 3.1 MiB, cpu 4ms`` style one-liner."""
        how = f"exit {self.exit_code}" if not self.signal else f"killed by {self.signal_name}"
        parts = [f"{how} in {self.duration * 1000:.0f}ms"]
        if self.peak_memory is not None:
            parts.append(f"peak memory {format_size(self.peak_memory)}")
        if self.cpu_time is not None:
            parts.append(f"cpu {self.cpu_time * 1000:.0f}ms")
        if self.pids_peak is not None:
            parts.append(f"processes {self.pids_peak}")
        parts.append(f"output {self.stdout_bytes}+{self.stderr_bytes} bytes")
        return ", ".join(parts)

    def to_dict(self, *, with_output: bool = False) -> dict[str, Any]:
        """Plain JSON-able data (a shallow copy: every field is a scalar but ``limits``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["limits"] = dict(self.limits)
        for key in ("stdout", "stderr"):
            value = data.pop(key)
            if with_output:
                data[key] = value.decode("utf-8", "replace")
        data["cause"] = self.cause
        return data
