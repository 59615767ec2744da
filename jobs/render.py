"""Printing a job for people: live sections as steps run, then the summary.

One renderer serves both the follower of a queued job (events read back from
Redis) and the embedded runner (events as they happen), so both look alike::

    --- service redis: ready in 0.05s
    ==> [1/2] test: python -m pytest -q --junitxml=report.xml
    ...output...
    <== [1/2] test: failed (exit 1) in 1.93s

Services' output is folded: only their state changes are shown, and
``Renderer(service=NAME)`` (`sandbox jobs logs ID --service NAME`) shows one
service's output alone.
"""

from __future__ import annotations

import sys
from typing import TextIO

from sandbox import format_size

from .events import LogEvent
from .result import JobResult


class Renderer:
    """Writes events to a terminal: step output to stdout/stderr, sections to stdout."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, *,
                 service: str | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.service = service

    def write(self, event: LogEvent) -> None:
        f = event.fields
        if self.service is not None:
            self._service_only(event)
        elif event.kind == "out":
            if not f.get("service"):  # a service's output is folded
                self._raw(self.err if event.stream == "stderr" else self.out, event.data)
        elif event.kind == "service":
            self._line(f"--- service {f.get('service')}: {f.get('state')}"
                       + (f" {f['message']}" if f.get("message") else ""))
        elif event.kind == "step-start":
            self._line(f"==> [{f.get('index')}/{f.get('count')}] {event.step}: {f.get('run', '')}")
        elif event.kind == "step-end":
            how = f.get("status", "?")
            if f.get("exit_code") not in (None, "", "0"):
                how += f" (exit {f['exit_code']})"
            note = f"; {f['message']}" if f.get("message") else ""
            self._line(f"<== [{f.get('index')}/{f.get('count')}] {event.step}: {how} "
                       f"in {float(f.get('duration') or 0):.2f}s{note}")
        elif event.kind == "note":
            self._line(f"--- {event.data.decode('utf-8', 'replace')}")

    def _service_only(self, event: LogEvent) -> None:
        if event.fields.get("service") != self.service:
            return
        if event.kind == "out":
            self._raw(self.err if event.stream == "stderr" else self.out, event.data)

    def _raw(self, stream: TextIO, data: bytes) -> None:
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))

    def _line(self, text: str) -> None:
        self.err.flush()
        self.out.write(text + "\n")
        self.out.flush()


def summary(result: JobResult) -> str:
    """Status, durations, peak memory, steps, JUnit totals and one block per failure."""
    peak = f", peak memory {format_size(result.peak_memory)}" if result.peak_memory else ""
    lines = [f"job {result.id} {result.name!r}: {result.status} in {result.duration:.2f}s{peak}"]
    if result.error:
        lines.append(f"  error: {result.error}")
    lines += [f"  service {svc.line()}" for svc in result.services]
    lines += [f"  step {step.line()}" for step in result.steps]
    junit = result.junit
    if junit is not None:
        lines.append(f"JUnit: {junit.headline()}  ({junit.tests} tests, {junit.failures} failures, "
                     f"{junit.errors} errors, {junit.skipped} skipped)")
        lines += [f"  {problem}" for problem in junit.problems]
        for case in junit.bad_cases:
            lines.append(f"{'FAILED' if case.outcome == 'failed' else 'ERROR'} {case.nodeid}")
            if case.message:
                lines.append(f"    {case.message.splitlines()[0][:300]}")
            lines += [f"    {line}" for line in case.text.splitlines()]
    for art in result.artifacts:
        lines.append(f"artifact {art.path} ({format_size(art.size)}"
                     f"{'' if art.stored else ', over the size cap: not stored'})")
    return "\n".join(lines)
