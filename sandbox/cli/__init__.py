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

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import NoReturn

#: Verb modules inside the engine, in --help order.
BUILTIN = ("run", "lifecycle", "manage", "images", "build", "transfer", "doctor", "network")
#: Verb modules of the packages built on the engine, imported if installed.
EXTENSIONS = ("jobs.cli", "worker.cli", "server.cli", "server.class_cli")

USAGE_ERROR = 125


class Parser(argparse.ArgumentParser):
    """argparse, but bad input exits 125 with one line, as Docker's CLI does."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


#: Verbs whose parser is built alone when they are the command (startup time: registering
#: every verb costs more than some verbs' own work), and the module declaring each.
ALONE = {"run": "run", "build": "build"}


def build_parser(verb: str | None = None) -> Parser:
    """The whole parser, or only ``verb``'s when it is one of ALONE."""
    parser = Parser(prog="sandbox", description="Run commands in isolated Linux containers "
                    "that start in milliseconds and leave nothing behind.")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-H", "--host", metavar="URL",
                        help="a daemon to send the command to: unix:///PATH, tcp://HOST:PORT "
                        "(with SANDBOX_TOKEN) or https://HOST:PORT (default: SANDBOX_HOST; "
                        "unset: run here)")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    if verb in ALONE:
        importlib.import_module(f"{__name__}.{ALONE[verb]}").register(sub)
        return parser
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


def verb_of(words: list[str]) -> str | None:
    """The verb of a command line, past the options before it (``-H URL run ...``), or None."""
    at = 0
    while at < len(words):
        word = words[at]
        if word in ("-H", "--host"):
            at += 2
        elif word.startswith(("--host=", "-H")):
            at += 1
        else:
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from_command_line = argv is None
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(verb_of(words))
    args = parser.parse_args(words)
    if from_command_line and any("@" in a or "password=" in a for a in sys.argv):
        from ..redact import hide_secrets_from_ps

        hide_secrets_from_ps(list(sys.orig_argv))  # `--redis redis://:pw@...`: not for ps(1)
    try:
        host = args.host or os.environ.get("SANDBOX_HOST")
        remote = getattr(args, "remote", None)
        if not host or remote == "local":
            return int(args.handler(args) or 0)
        return _remote(args, host, remote)
    except SandboxError as exc:
        return fail(str(exc), exc.exit_status)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _remote(args: argparse.Namespace, host: str, remote) -> int:
    """The verb through a daemon (``--host``/SANDBOX_HOST): same output, same exit status."""
    from ..client import Client, DaemonError

    verb = " ".join(v for v in (args.verb, *(getattr(args, f"{args.verb}_verb", None),)) if v)
    if remote is None:
        return fail(f"`sandbox {verb}` does not go through a daemon yet: run it without "
                    "SANDBOX_HOST/--host, on the daemon's host")
    try:
        client = Client.from_env(host)
    except DaemonError as exc:  # a host that is no URL of a daemon
        return fail(str(exc), exc.exit_status)
    try:
        return int(remote(args, client) or 0)
    except DaemonError as exc:
        return fail(str(exc), exc.exit_status)
    finally:
        client.close()


def entry() -> None:
    try:
        status = main()
    except KeyboardInterrupt:  # Ctrl-C while starting up (parsing, imports): nothing made yet
        status = 130
    sys.exit(status)
