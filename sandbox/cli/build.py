"""`sandbox build`: an image from a Sandboxfile (Dockerfile syntax), step by step, cached."""

from __future__ import annotations

import argparse
import os
import sys


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
    p.set_defaults(handler=handle)


def request_from_args(args: argparse.Namespace):
    """The BuildRequest the flags describe (SpecError/BuildFileError on bad values)."""
    from ..errors import BuildFileError
    from ..images.build.execute import BuildRequest
    from ..images.build.frontend import default_file
    from ..spec import Limits, NetworkSpec

    if not os.path.isdir(args.context):
        raise BuildFileError(f"the build context {args.context!r} is not a directory")
    build_args = {}
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        if not key:
            raise BuildFileError(f"--build-arg {item!r}: expected KEY=VALUE or KEY")
        if sep or key in os.environ:
            build_args[key] = value if sep else os.environ[key]
    limits = {k: v for k in ("memory", "cpus", "pids", "timeout") if (v := getattr(args, k)) is not None}
    path = args.file or default_file(args.context)
    return BuildRequest(
        context=args.context, file=path, tags=tuple(args.tag), build_args=build_args,
        target=args.target, no_cache=args.no_cache,
        network=NetworkSpec(args.network, egress=args.egress), limits=Limits(**limits),
        shown_file=path)


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
        if exc.tail:
            lines = "line" if len(exc.tail) == 1 else f"{len(exc.tail)} lines"
            print(f"------ the last {lines} of its output", file=sys.stderr)
            print("\n".join(f"  {line}" for line in exc.tail), file=sys.stderr)
            print("------", file=sys.stderr)
        print(f"sandbox: error: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0


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
    from ..images.build.frontend import dump, plan_text, read_file
    from ..images.build.storage import Bases

    plan = plan_text(read_file(request.file), request.shown_file, base_config=Bases().config,
                     build_args=request.build_args, target=request.target)
    sys.stdout.write(dump(plan))
    return 0
