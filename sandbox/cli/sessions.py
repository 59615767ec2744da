"""Interactive and detached sessions: `run -it`, `run -d`, `attach` and `exec`.

`run -d` and `run -t` start a supervised sandbox (``sandbox.supervisor``);
with -t (and -i) this process then relays this terminal to it, raw, until
the command ends (its exit status), the detach keys are typed (0, the
sandbox goes on; being a foreground run, it is still removed at its end),
or this process is told to end (SIGTERM, SIGHUP): then, as when a terminal
closes, the command gets a hangup and the sandbox ends. `attach` does the
same for a running supervised sandbox. `exec` starts its process from here
(``sandbox.execute``): it ends with this process.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import SandboxError
from . import fail

NOT_A_TTY = "the input device is not a TTY"


def terminal_size(fd: int | None = None) -> tuple[int, int]:
    """This process's terminal size (rows, cols), else 24x80."""
    from ..linux.pty import window_size
    from ..planner import DEFAULT_TTY_SIZE

    for candidate in ((fd,) if fd is not None else (0, 1, 2)):
        try:
            rows, cols = window_size(candidate)
            if rows and cols:
                return rows, cols
        except OSError:
            continue
    return DEFAULT_TTY_SIZE


def run_supervised(args: argparse.Namespace, spec) -> int:
    """`sandbox run -d` or `-t`: a supervised sandbox; -t without -d: this terminal on it."""
    from ..supervisor.lifecycle import run_detached
    from ..supervisor.options import RestartPolicy, SupervisorOptions

    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        return fail(NOT_A_TTY)
    if args.restart != "no" and not args.detach:
        return fail("--restart needs -d (a run in the foreground ends with its terminal)")
    if args.record and args.detach:
        return fail("--record records a session on this terminal: -t without -d "
                    "(or `sandbox attach --record FILE`)")
    keys = _detach_keys(args.detach_keys)  # checked even with -d: bad input is said at once
    options = SupervisorOptions(
        auto_remove=args.rm or not args.detach, restart=RestartPolicy.parse(args.restart),
        foreground=not args.detach, log_stdin=args.log_stdin, tty_size=terminal_size())
    if args.detach:
        print(run_detached(spec, options).id)
        return 0
    record = _recorder(args)
    try:
        launched = run_detached(spec, options, attach=True)
    except BaseException:
        if record is not None:
            record.close()
        raise
    assert launched.attachment is not None
    return _session(launched.attachment, stdin=args.interactive, keys=keys, record=record)


def attach(args: argparse.Namespace) -> int:
    """`sandbox attach`: this terminal (or stdio) on a running supervised sandbox."""
    from .. import state
    from ..errors import StateError
    from ..supervisor.client import attach as attach_to
    from ..supervisor.status import read_status

    sdir = state.resolve(args.sandbox)
    if read_status(sdir) is None:
        raise StateError(f"sandbox {sdir.id} runs in the foreground of the process that made "
                         "it: there is nothing to attach to", hint="`sandbox logs -f` follows "
                         "its output")
    keys = _detach_keys(args.detach_keys)
    attachment = attach_to(sdir, stdin=not args.no_stdin)
    if attachment.tty and not args.no_stdin and not os.isatty(0):
        attachment.close()
        return fail(NOT_A_TTY)
    return _session(attachment, stdin=not args.no_stdin, keys=keys, record=_recorder(args))


def attach_started(launched, stdin: bool) -> int:
    """`sandbox start -a`: the session on the sandbox just started."""
    if launched.tty and stdin and not os.isatty(0):
        launched.attachment.close()
        return fail(NOT_A_TTY)
    return _session(launched.attachment, stdin=stdin, keys=_detach_keys(None), record=None)


def _session(attachment, *, stdin: bool, keys: bytes, record) -> int:
    """Relay this terminal to a supervised sandbox until the session ends; the exit status."""
    from .relay import Relay
    from .terminal import RawTerminal

    raw = RawTerminal(0) if attachment.tty and stdin and os.isatty(0) else None
    try:
        ended = Relay(attachment, tty=attachment.tty, stdin=stdin, detach_keys=keys,
                      record=record, on_note=note_printer(raw is not None)).run()
    finally:
        if raw is not None:
            raw.close()
        attachment.close()
        if record is not None:
            record.close()
    return report_end(ended, attachment.id)


def exec_(args: argparse.Namespace) -> int:
    """`sandbox exec`: a process in a running sandbox, started from here."""
    from ..execute import exec_into
    from . import parse_env

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return fail("exec needs a command to run in the sandbox (e.g. sandbox exec NAME sh)")
    if args.tty and args.interactive and not os.isatty(0) and not args.dry_run:
        return fail(NOT_A_TTY)
    endpoint = None
    if args.tty:
        from .relay import ExecEndpoint

        endpoint = ExecEndpoint()
    exe = exec_into(args.sandbox, command, env=parse_env(args.env), workdir=args.workdir,
                    user=args.user, tty=args.tty, tty_size=terminal_size(),
                    interactive=args.interactive and args.tty,  # else stdin is ours, as is
                    on_output=endpoint.on_output if endpoint else _write_output,
                    stdin_fd=0 if args.interactive and not args.tty else None)
    if args.dry_run:
        if endpoint is not None:
            endpoint.close()
        print(exe.plan.describe())
        return 0
    if endpoint is None:
        result = exe.run()
        return result.exit_code
    return _exec_session(exe, endpoint, stdin=args.interactive, record=_recorder(args))


def _exec_session(exe, endpoint, *, stdin: bool, record) -> int:
    from .relay import Relay
    from .terminal import RawTerminal

    raw = RawTerminal(0) if stdin and os.isatty(0) else None  # before any thread starts
    try:
        endpoint.start(exe)
        ended = Relay(endpoint, tty=True, stdin=stdin, record=record).run()
    finally:
        if raw is not None:
            raw.close()
        exe.close()
        endpoint.close()
        if record is not None:
            record.close()
    return report_end(ended, exe.sandbox_id)


def _write_output(record) -> None:
    stream = sys.stdout.buffer if record.stream == "stdout" else sys.stderr.buffer
    stream.write(record.data)
    stream.flush()


def _detach_keys(text: str | None) -> bytes:
    from .terminal import DEFAULT_DETACH_KEYS, parse_detach_keys

    return parse_detach_keys(DEFAULT_DETACH_KEYS if text is None else text)


def _recorder(args: argparse.Namespace):
    if not getattr(args, "record", None):
        return None
    from ..asciicast import Asciicast

    rows, cols = terminal_size()
    try:
        return Asciicast(args.record, rows, cols, record_input=getattr(args, "log_stdin", False))
    except OSError as exc:
        raise SandboxError(f"cannot write the recording {args.record}: {exc.strerror}") from exc


def note_printer(raw: bool):
    def note(text: str) -> None:
        end = "\r\n" if raw else "\n"
        sys.stderr.write(f"sandbox: {text}{end}")
        sys.stderr.flush()

    return note


def report_end(ended, sandbox_id: str) -> int:
    """Say how a session ended (on stderr, the terminal restored): its exit status."""
    if ended.how == "detached":
        print(f"\nsandbox: detached from {sandbox_id} (`sandbox attach {sandbox_id}` to come "
              "back)", file=sys.stderr)
        return 0
    if ended.message:
        start = "" if ended.how == "exited" else "\n"  # the cursor may be mid-line
        print(f"{start}sandbox: {ended.message}", file=sys.stderr)
    return ended.exit_code
