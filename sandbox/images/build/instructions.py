"""Each parsed node as one typed command: frozen dataclasses with a Location.

The second stage of a build, after BuildKit's ``instructions`` package: the
shape of each instruction is checked here (its flags, how many arguments,
exec or shell form, KEY=VALUE pairs), and any error is wrapped with the
node's location. Values that may hold ``$VARIABLES`` stay as written; the
plan expands them, since what they expand to depends on the ARG and ENV
instructions before them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import BuildFileError
from .parse import Node, ParsedFile
from .source import Location
from .words import split_raw

SUPPORTED = ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "LABEL", "EXPOSE",
             "CMD", "ENTRYPOINT", "SHELL")
#: Dockerfile instructions this front end knows but does not build, and why.
UNSUPPORTED = {
    "VOLUME": "give bind mounts when the image runs, with -v",
    "HEALTHCHECK": "a sandbox has no health checks",
    "STOPSIGNAL": "a sandbox is stopped with SIGKILL",
    "ONBUILD": "triggers are not supported",
    "MAINTAINER": "use LABEL maintainer=...",
}
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Command:
    """What every instruction has: where it is and the keyword it was written with."""

    loc: Location


@dataclass(frozen=True)
class From(Command):
    image: str
    name: str | None = None
    platform: str | None = None


@dataclass(frozen=True)
class Arg(Command):
    items: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Run(Command):
    args: tuple[str, ...]
    exec_form: bool


@dataclass(frozen=True)
class Copy(Command):
    sources: tuple[str, ...]
    dest: str
    source_stage: str | None = None
    chown: str | None = None
    chmod: str | None = None
    add: bool = False


@dataclass(frozen=True)
class Env(Command):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Label(Command):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Workdir(Command):
    path: str


@dataclass(frozen=True)
class User(Command):
    user: str


@dataclass(frozen=True)
class Expose(Command):
    ports: tuple[str, ...]


@dataclass(frozen=True)
class Cmd(Command):
    args: tuple[str, ...]
    exec_form: bool


@dataclass(frozen=True)
class Entrypoint(Command):
    args: tuple[str, ...]
    exec_form: bool


@dataclass(frozen=True)
class Shell(Command):
    args: tuple[str, ...]


def commands(parsed: ParsedFile) -> list[Command]:
    """Every node of the file as its command; BuildFileError at the first bad one."""
    return [parse_node(node, parsed.escape) for node in parsed.nodes]


def parse_node(node: Node, escape: str = "\\") -> Command:
    """One node as its command, any error located at the node's lines."""
    loc = Location(node.start_line, node.end_line)
    try:
        maker = _MAKERS.get(node.keyword)
        if maker is None:
            raise ValueError(_unknown(node.keyword))
        return maker(loc, node.args, escape)
    except ValueError as exc:
        raise BuildFileError(f"{node.keyword}: {exc}" if maker else str(exc),
                             line=node.start_line, end_line=node.end_line) from None


def _unknown(keyword: str) -> str:
    supported = ", ".join(SUPPORTED)
    if keyword in UNSUPPORTED:
        return f"{keyword} is not supported: {UNSUPPORTED[keyword]} (supported: {supported})"
    return f"unknown instruction {keyword} (supported: {supported})"


# -- flags and forms -------------------------------------------------------------

def take_flags(args: str, allowed: tuple[str, ...], escape: str) -> tuple[dict[str, str], str]:
    """Leading ``--name=value`` flags (each at most once) and the rest of the arguments."""
    flags: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        if word == "--":
            break
        name, eq, value = word[2:].partition("=")
        if name not in allowed:
            accepted = ", ".join(f"--{a}" for a in allowed)
            raise ValueError(f"unknown flag --{name} ({'accepted: ' + accepted if accepted else 'it takes no flags'})")
        if not eq or not value:
            raise ValueError(f"--{name} needs a value: --{name}=VALUE")
        if name in flags:
            raise ValueError(f"--{name} is given twice")
        flags[name] = value
    return flags, rest


def json_list(args: str) -> list[str] | None:
    """The JSON array of strings ``args`` holds, or None when it is not one (shell form)."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command_form(args: str) -> tuple[tuple[str, ...], bool]:
    as_list = json_list(args)
    if as_list is not None:
        return tuple(as_list), True
    return (args,), False


def key_values(args: str, escape: str, what: str) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE ...`` pairs (values as written), or the old ``KEY VALUE`` form."""
    words = split_raw(args, escape)
    if not words:
        raise ValueError(f"expected {what}=VALUE")
    if "=" not in words[0]:
        key, _, value = args.partition(" ")
        if not value.strip():
            raise ValueError(f"expected {what}=VALUE or {what} VALUE, got {args!r}")
        return ((key, value.strip()),)
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise ValueError(f"expected {what}=VALUE, got {word!r} (quote values with spaces)")
        pairs.append((key, value))
    return tuple(pairs)


# -- one maker per instruction ----------------------------------------------------

def _from(loc: Location, args: str, escape: str) -> From:
    flags, rest = take_flags(args, ("platform",), escape)
    words = rest.split()
    if len(words) == 1:
        return From(loc, words[0], platform=flags.get("platform"))
    if len(words) == 3 and words[1].upper() == "AS":
        name = words[2].lower()
        if not re.match(r"^[a-z][a-z0-9_.-]*$", name):
            raise ValueError(f"invalid stage name {words[2]!r}: expected a letter, then letters, "
                             "digits, '_', '.' or '-'")
        return From(loc, words[0], name, flags.get("platform"))
    raise ValueError("expected FROM IMAGE [AS NAME]")


def _arg(loc: Location, args: str, escape: str) -> Arg:
    items = []
    for word in split_raw(args, escape) or [""]:
        name, eq, default = word.partition("=")
        if not _ENV_NAME_RE.match(name):
            raise ValueError(f"invalid name {name!r}: expected letters, digits and _, "
                             "not starting with a digit")
        items.append((name, default if eq else None))
    return Arg(loc, tuple(items))


def _run(loc: Location, args: str, escape: str) -> Run:
    if args.startswith("--"):
        take_flags(args, (), escape)  # RUN --mount, --network, ...: named in the error
    command, exec_form = _command_form(args)
    if not any(command):
        raise ValueError("expected a command")
    return Run(loc, command, exec_form)


def _copy(loc: Location, args: str, escape: str, *, add: bool = False) -> Copy:
    allowed = ("chown", "chmod") if add else ("from", "chown", "chmod")
    flags, rest = take_flags(args, allowed, escape)
    words = json_list(rest)
    if words is None:
        words = split_raw(rest, escape)
    if len(words) < 2:
        raise ValueError("expected at least one source and a destination: SRC... DEST")
    for source in words[:-1]:
        if re.match(r"^[a-z][a-z0-9+.-]*://|^git@", source):
            raise ValueError(f"{source!r}: sources from URLs are not supported; download in a "
                             "RUN step built with --network bridge --egress")
    chmod = flags.get("chmod")
    if chmod is not None and not re.match(r"^[0-7]{3,4}$", chmod):
        raise ValueError(f"invalid --chmod={chmod}: expected an octal mode like 755 or 0644")
    return Copy(loc, tuple(words[:-1]), words[-1], flags.get("from"), flags.get("chown"), chmod, add)


def _env(loc: Location, args: str, escape: str) -> Env:
    pairs = key_values(args, escape, "NAME")
    for key, _ in pairs:
        if not _ENV_NAME_RE.match(key):
            raise ValueError(f"invalid name {key!r}: expected letters, digits and _, "
                             "not starting with a digit")
    return Env(loc, pairs)


def _label(loc: Location, args: str, escape: str) -> Label:
    return Label(loc, key_values(args, escape, "KEY"))


def _one(kind: type, what: str) -> Callable[[Location, str, str], Command]:
    def make(loc: Location, args: str, escape: str) -> Command:
        if not args:
            raise ValueError(f"expected {what}")
        return kind(loc, args)
    return make


def _expose(loc: Location, args: str, escape: str) -> Expose:
    words = split_raw(args, escape)
    if not words:
        raise ValueError("expected PORT[/tcp|udp] ...")
    return Expose(loc, tuple(words))


def _cmd_like(kind: type) -> Callable[[Location, str, str], Command]:
    def make(loc: Location, args: str, escape: str) -> Command:
        command, exec_form = _command_form(args)
        if not exec_form and not args:
            raise ValueError('expected a command, in exec form ["prog", "arg"] or shell form')
        return kind(loc, command, exec_form)
    return make


def _shell(loc: Location, args: str, escape: str) -> Shell:
    words = json_list(args)
    if not words:
        raise ValueError('expected the shell in exec form, like ["/bin/bash", "-c"]')
    return Shell(loc, tuple(words))


_MAKERS: dict[str, Callable[[Location, str, str], Command]] = {
    "FROM": _from, "ARG": _arg, "RUN": _run, "COPY": _copy,
    "ADD": lambda loc, args, escape: _copy(loc, args, escape, add=True),
    "ENV": _env, "LABEL": _label, "WORKDIR": _one(Workdir, "a directory"),
    "USER": _one(User, "USER[:GROUP]"), "EXPOSE": _expose,
    "CMD": _cmd_like(Cmd), "ENTRYPOINT": _cmd_like(Entrypoint), "SHELL": _shell,
}
