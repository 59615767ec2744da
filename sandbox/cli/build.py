"""`sandbox build`: an image from a Sandboxfile (Dockerfile syntax), step by step, cached."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build", help="build an image from a Sandboxfile",
        description="Build an image from a Sandboxfile (a Dockerfile subset: FROM, RUN, COPY, "
        "ADD, ENV, ARG, WORKDIR, USER, LABEL, EXPOSE, CMD, ENTRYPOINT, SHELL) in CONTEXT. Each "
        "RUN runs in a sandbox with the build's limits (no network unless --network bridge "
        "--egress); each step is reused from the cache while its parent, its instruction and "
        "the content it copies are unchanged. Exits with a failed RUN's status, 125 for bad input.",
        epilog="example: sandbox build -t app:1 --build-arg VERSION=2 .")
    p.add_argument("context", metavar="CONTEXT", help="the directory COPY and ADD read from")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                   help="name the image (tag latest when omitted); may be repeated")
    p.add_argument("-f", "--file", metavar="FILE",
                   help="the Sandboxfile (default: CONTEXT/Sandboxfile, else CONTEXT/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="set an ARG (KEY alone copies it from this environment)")
    p.add_argument("--target", metavar="STAGE", help="build this stage of a multi-stage file")
    p.add_argument("--no-cache", action="store_true", help="run every step again")
    p.add_argument("--network", default="none",
                   help="network of RUN steps: none (default), bridge or a network name")
    p.add_argument("--egress", action="store_true", help="with bridge: let RUN steps reach outside")
    p.add_argument("--memory", default=None, help="memory limit of each RUN (default 1g)")
    p.add_argument("--cpus", default=None, help="CPU limit of each RUN, e.g. 1.5")
    p.add_argument("--pids", default=None, help="process limit of each RUN (default 4096)")
    p.add_argument("--timeout", default=None, help="wall-time limit of each RUN, e.g. 10m")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    p.set_defaults(handler=handle, remote=remote)


def request_from_args(args: argparse.Namespace):
    """The BuildRequest the flags describe (SpecError/BuildFileError on bad values)."""
    from ..images.build.execute import BuildRequest
    from ..images.build.frontend import default_file
    from ..spec import Limits, NetworkSpec

    build_args = checked_args(args)
    limits = _limits(args)
    path = args.file or default_file(args.context)
    return BuildRequest(
        context=args.context, file=path, tags=tuple(args.tag), build_args=build_args,
        target=args.target, no_cache=args.no_cache,
        network=NetworkSpec(args.network, egress=args.egress), limits=Limits(**limits),
        shown_file=path)


def checked_args(args: argparse.Namespace) -> dict[str, str]:
    """The context checked and the build args the flags give (BuildFileError when wrong)."""
    from ..errors import BuildFileError

    if not os.path.isdir(args.context):
        raise BuildFileError(f"the build context {args.context!r} is not a directory")
    build_args = {}
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        if not key:
            raise BuildFileError(f"--build-arg {item!r}: expected KEY=VALUE or KEY")
        if sep or key in os.environ:
            build_args[key] = value if sep else os.environ[key]
    return build_args


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k in ("memory", "cpus", "pids", "timeout") if (v := getattr(args, k)) is not None}


def handle(args: argparse.Namespace) -> int:
    from ..errors import BuildFileError, BuildStepFailed

    request = request_from_args(args)
    try:
        if args.dry_run:
            return _dry_run(request)
        from ..images.build.execute import build

        build(request, quiet=args.quiet)
    except BuildFileError as exc:
        return _file_error(exc, request.file)
    except BuildStepFailed as exc:
        return _step_failed(str(exc), exc.tail, exc.exit_status)
    return 0


def _step_failed(message: str, tail: tuple[str, ...] | list[str], status: int) -> int:
    """A failed RUN step's report: its last output lines, then the error line."""
    if tail:
        lines = "line" if len(tail) == 1 else f"{len(tail)} lines"
        print(f"------ the last {lines} of its output", file=sys.stderr)
        print("\n".join(f"  {line}" for line in tail), file=sys.stderr)
        print("------", file=sys.stderr)
    print(f"sandbox: error: {message}", file=sys.stderr)
    return status


def remote(args: argparse.Namespace, client) -> int:
    """`sandbox build` through a daemon: the context sent as a tar, the same output and status."""
    from .transfer import follow_progress

    if args.dry_run:
        return _remote_dry_run(args, client)
    build_args = checked_args(args)
    path = args.file or _default_file(args.context)
    file, text = _file_for_daemon(args.context, path)
    lines = client.images.build(
        pack_context(args.context), file=file, sandboxfile=text, shown_file=path,
        tags=args.tag, build_args=build_args, target=args.target, no_cache=args.no_cache,
        network=args.network, egress=args.egress, limits=_limits(args))
    outcome = follow_progress(lines, None if args.quiet else sys.stdout)
    if "error" in outcome:
        error = outcome["error"]
        return _step_failed(error["message"], error.get("tail") or (),
                            int(error.get("exit_status") or 125))
    if args.quiet:
        print(outcome["result"]["id"])
    return 0


def _remote_dry_run(args: argparse.Namespace, client) -> int:
    """The plan the daemon would build (against its store), printed as `--dry-run` prints
    it here; only the Sandboxfile is sent, the context is not read."""
    from ..errors import BuildFileError
    from .transfer import follow_progress

    build_args = checked_args(args)
    path = args.file or _default_file(args.context)
    try:
        with open(path, "rb") as f:
            text = f.read((1 << 20) + 1)
    except OSError as exc:
        return _file_error(BuildFileError(f"cannot read: {exc.strerror or exc}", file=path), path)
    lines = client.images.build(EMPTY_TAR, sandboxfile=text, shown_file=path, build_args=build_args,
                                target=args.target, dry_run=True)
    outcome = follow_progress(lines, sys.stdout)
    if "error" in outcome:
        error = outcome["error"]
        return _step_failed(error["message"], (), int(error.get("exit_status") or 125))
    return 0


#: A tar with no member (two zero blocks, padded to a record): the context of a dry run.
EMPTY_TAR = bytes(10240)


def _default_file(context: str) -> str:
    """As the engine picks it (``frontend.default_file``): Sandboxfile, else Dockerfile."""
    for name in ("Sandboxfile", "Dockerfile"):
        if os.path.exists(os.path.join(context, name)):
            return os.path.join(context, name)
    return os.path.join(context, "Sandboxfile")


def _file_for_daemon(context: str, path: str) -> tuple[str | None, bytes | None]:
    """(its path in the context, None), or (None, its text) for a file outside the context."""
    root = os.path.realpath(context)
    if os.path.realpath(path).startswith(root + os.sep):
        return os.path.relpath(path, context).replace(os.sep, "/"), None
    from ..errors import BuildFileError

    try:
        with open(path, "rb") as f:
            return None, f.read((1 << 20) + 1)
    except OSError as exc:
        raise BuildFileError(f"cannot read: {exc.strerror or exc}", file=path) from None


def pack_context(context: str) -> bytes:
    """The context as a tar (files, directories, links; no devices or fifos: no build reads them)."""
    import io
    import tarfile

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return info if info.isreg() or info.isdir() or info.issym() or info.islnk() else None

    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(context, arcname=".", filter=keep)
    except OSError as exc:
        from ..errors import BuildFileError

        raise BuildFileError(f"cannot read the build context {context!r}: {exc}") from None
    return buf.getvalue()


def _file_error(exc, path: str) -> int:
    from ..images.build.source import render

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        text = None
    print(f"sandbox: error: {render(exc, text)}", file=sys.stderr)
    return exc.exit_status


def _dry_run(request) -> int:
    from ..images.build import build_plan_text

    sys.stdout.write(build_plan_text(request.file, shown_file=request.shown_file,
                                     build_args=request.build_args, target=request.target))
    return 0
