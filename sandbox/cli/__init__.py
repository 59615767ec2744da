"""The `sandbox` command: Docker's verbs where they fit.

Each verb lives in its own module (``run``, ``manage``, ``images``, ...) with a
``register(subparsers)`` function that only declares arguments; the heavy
imports happen inside the handlers, so `sandbox run` starts fast. Packages
outside the engine (jobs, worker, ...) add their verbs through EXTENSIONS,
named as strings so the engine never imports them unless asked.

Exit statuses: the command's own for `run`; 125 for bad input or a failed
setup; 126/127 when the command cannot be executed / is not found.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import SandboxError

#: Verb modules inside the engine, in --help order.
BUILTIN = ("run", "lifecycle", "manage", "images", "doctor")
#: Verb modules of the packages built on the engine, imported if installed.
EXTENSIONS = ("sandbox.network.cli", "jobs.cli", "worker.cli")

USAGE_ERROR = 125


class Parser(argparse.ArgumentParser):
    """argparse, but bad input exits 125 with one line, as Docker's CLI does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> Parser:
    parser = Parser(prog="sandbox", description="Run commands in isolated Linux containers "
                    "that start in milliseconds and leave nothing behind.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in BUILTIN:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for module in EXTENSIONS:
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if exc.name and not module.startswith(exc.name):
                raise
    return parser


def _version() -> str:
    from .. import __version__

    return f"sandbox {__version__}"


def fail(message: str, status: int = USAGE_ERROR) -> int:
    """Print one error line; return the exit status."""
    print(f"sandbox: error: {message}", file=sys.stderr)
    return status


def parse_env(items: list[str]) -> dict[str, str]:
    """``-e KEY=VALUE`` (and ``-e KEY``: its value here, if it is set here) as a dict."""
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
        elif key in os.environ:  # as Docker: a KEY unset here is left out
            env[key] = os.environ[key]
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and any("@" in a or "password=" in a for a in sys.argv):
        from ..redact import hide_secrets_from_ps

        hide_secrets_from_ps(list(sys.orig_argv))  # `--redis redis://:pw@...`: not for ps(1)
    try:
        return int(args.handler(args) or 0)
    except SandboxError as exc:
        return fail(str(exc), exc.exit_status)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def entry() -> None:
    try:
        status = main()
    except KeyboardInterrupt:  # Ctrl-C while starting up (parsing, imports): nothing made yet
        status = 130
    sys.exit(status)
