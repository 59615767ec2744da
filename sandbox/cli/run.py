"""`sandbox run`: run a command in a new sandbox, print its output live, exit with its status."""

from __future__ import annotations

import argparse
import os
import signal
import sys

LIMIT_HELP = "(0 or none: unlimited)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run a command in a new sandbox",
        description="Run COMMAND in a new sandbox made from IMAGE (busybox, host, or a "
        "stored NAME[:TAG]), stream its output live, tear everything down, and exit with the "
        "command's status (128+N if signal N killed it; 125 setup error, 126 cannot "
        "execute, 127 not found). Without COMMAND the image's CMD runs; the image's "
        "ENTRYPOINT, ENV, WORKDIR and USER apply as with Docker. With -it the command "
        "(default: the image's CMD, else /bin/sh) runs on a terminal made inside the sandbox, "
        "this terminal in raw mode until it ends or you detach (Ctrl-P Ctrl-Q): Ctrl-C and "
        "Ctrl-Z act inside. With -d it runs in the background, owned by a supervisor "
        "process: `sandbox attach`, `exec`, `logs`, `stop`, `start`, `rm` take it from there.",
        epilog="examples: sandbox run --memory 64m --timeout 10s busybox -- sh -c 'echo hi'; "
        "sandbox run -it busybox; sandbox run -d --name web --restart on-failure:3 IMAGE")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="the command and its arguments (after --)")
    g = p.add_argument_group("container")
    g.add_argument("--name", help="a unique name for `sandbox ps/logs/rm` and networks")
    g.add_argument("--hostname", default="sandbox", help="host name inside (default: sandbox)")
    g.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                   help="set an environment variable (KEY alone copies it from here, "
                   "if it is set here)")
    g.add_argument("-w", "--workdir", default=None,
                   help="working directory inside, made if missing (default: the image's, or /)")
    g.add_argument("-u", "--user", default=None,
                   help="UID[:GID] or NAME[:GROUP] (default: the image's USER, or 0:0)")
    g.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro|rw]",
                   help="bind mount a host path; read-only unless :rw")
    g.add_argument("--network", default="none",
                   help="none (default: loopback only), bridge, host (unsafe), or a network name")
    g.add_argument("--egress", action="store_true", help="with bridge: allow NAT to outside")
    g.add_argument("-p", "--publish", action="append", default=[], metavar="HOSTPORT:PORT",
                   help="with bridge: publish a port on the host's 127.0.0.1")
    g.add_argument("--allow-host-port", action="append", default=[], metavar="PORT",
                   help="with bridge: let the sandbox connect to this port of the host "
                   "(every other connection to the host is dropped)")
    g.add_argument("--cap-drop", action="append", default=[], metavar="CAP",
                   help="drop a capability (ALL drops every one)")
    g.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability")
    g.add_argument("--security-opt", action="append", default=[], metavar="seccomp=PROFILE",
                   help="seccomp=PROFILE.json (Docker's format) or seccomp=unconfined "
                   "(default: Docker's default profile)")
    g.add_argument("--userns", default=None, metavar="MODE",
                   help="auto: a user namespace of its own, root in it an unprivileged uid "
                   "range of the host; host: the host's (default: host)")
    g.add_argument("-i", "--interactive", action="store_true",
                   help="pass this terminal's stdin in (with -d: keep stdin open for `attach`)")
    g.add_argument("-t", "--tty", action="store_true",
                   help="run the command on a terminal made inside the sandbox (with -i: "
                   "this terminal, raw, until the command ends or you detach)")
    life = p.add_argument_group("a sandbox that outlives this command (-d, or -t)")
    life.add_argument("-d", "--detach", action="store_true",
                      help="start it in the background and print its id; it is kept (stopped) "
                      "after its command ends, until `sandbox rm`")
    life.add_argument("--rm", action="store_true",
                      help="with -d: remove it when its command ends (runs without -d always are)")
    life.add_argument("--restart", default="no", metavar="POLICY",
                      help="with -d: no (default), always, or on-failure[:N] (at most N times)")
    life.add_argument("--detach-keys", default=None, metavar="KEYS",
                      help="with -t: keys that detach from the session (default ctrl-p,ctrl-q; "
                      "'' for none)")
    life.add_argument("--log-stdin", action="store_true",
                      help="keep what is typed in the sandbox's log too (off: keys can be secrets)")
    life.add_argument("--record", default=None, metavar="FILE",
                      help="with -t: save the session as an asciicast v2 file (asciinema play FILE)")
    lim = p.add_argument_group("limits", "every limit is enforced by the kernel " + LIMIT_HELP)
    lim.add_argument("--memory", default="1g", help="memory limit, swap off (default 1g)")
    lim.add_argument("--memory-swap", default=None, help="swap allowed on top of --memory")
    lim.add_argument("--cpus", default=None, help="CPU share, e.g. 0.5 (default: unlimited)")
    lim.add_argument("--cpuset", default=None, help="pin to CPUs, e.g. 0 or 0-1")
    lim.add_argument("--pids", default="4096", help="process limit (default 4096)")
    lim.add_argument("--timeout", default=None, help="wall-clock limit, e.g. 30s (default: none)")
    lim.add_argument("--idle-timeout", default=None,
                     help="end it after this long without output or input, e.g. 15m (default: none)")
    lim.add_argument("--output-limit", default="16m", help="bytes of output kept (default 16m)")
    lim.add_argument("--disk", default="1g", help="size of the writable layer (default 1g)")
    lim.add_argument("--ulimit", action="append", default=None, metavar="NAME=SOFT[:HARD]",
                     help="lower an rlimit (default core=0); raising needs CAP_SYS_RESOURCE")
    out = p.add_argument_group("output")
    out.add_argument("--stats", action="store_true", help="print usage on stderr at the end")
    out.add_argument("--dry-run", action="store_true", help="print the setup plan, run nothing")
    p.set_defaults(handler=handle, remote=remote)


def spec_from_args(args: argparse.Namespace):
    """The SandboxSpec the flags describe (SpecError on bad values)."""
    from ..spec import Limits, Mount, NetworkSpec, SandboxSpec, capabilities_from, check_name
    from . import parse_env

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    env = parse_env(args.env)
    check_name(args.name)  # before it is used as the network alias, so the error names --name
    caps = capabilities_from(args.cap_add, args.cap_drop)
    limits = Limits(memory=args.memory, memory_swap=args.memory_swap, cpus=args.cpus,
                    cpuset=args.cpuset, pids=args.pids, timeout=args.timeout,
                    idle_timeout=args.idle_timeout, output=args.output_limit, disk=args.disk,
                    **({"ulimits": tuple(args.ulimit)} if args.ulimit is not None else {}))
    return SandboxSpec(
        image=args.image, command=tuple(command), env=env, workdir=args.workdir,
        user=args.user, hostname=args.hostname, name=args.name,
        mounts=tuple(Mount.parse(v) for v in args.volume), limits=limits,
        network=NetworkSpec(args.network, alias=args.name, egress=args.egress,
                            publish=tuple(args.publish),
                            allow_host_ports=tuple(args.allow_host_port)),
        capabilities=caps, seccomp=seccomp_option(args.security_opt),
        **({"userns": args.userns} if args.userns is not None else {}),
        tty=args.tty, interactive=bool(args.interactive and (args.tty or args.detach)),
    )


def seccomp_option(options: list[str]) -> str:
    """The seccomp setting of ``--security-opt`` values (Docker's syntax; the last wins)."""
    seccomp = "default"
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            key, sep, value = option.partition(":")  # Docker's older spelling
        if key != "seccomp" or not value:
            from ..spec import SpecError  # here only: a client of the daemon never loads the spec

            raise SpecError("security-opt", option, "seccomp=PROFILE.json or seccomp=unconfined")
        seccomp = value if value in ("unconfined", "default") else os.path.abspath(value)
    return seccomp


def _write(record) -> None:
    stream = sys.stdout.buffer if record.stream == "stdout" else sys.stderr.buffer
    stream.write(record.data)
    stream.flush()


def handle(args: argparse.Namespace) -> int:
    from ..runtime import Sandbox
    from ..signals import StopOnSignals

    spec = spec_from_args(args)
    if args.dry_run:
        return _dry_run(spec)
    if args.detach or args.tty:
        from .sessions import run_supervised

        return run_supervised(args, spec)
    misplaced = _session_flag(args)
    if misplaced:
        from . import fail

        return fail(misplaced)

    from ..hostlimits import capped

    for note in capped(spec.limits):
        print(f"sandbox: note: {note}", file=sys.stderr)
    _pull_if_missing(spec.image)
    sandbox = Sandbox(spec, on_output=_write, stdin_fd=0 if args.interactive else None)
    signals = StopOnSignals(signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    result = sandbox.run(stop=signals)
    if signals.received:
        return 128 + signals.received[0]
    message = result.limit_message()
    if message:
        print(f"sandbox: {message}", file=sys.stderr)
    if args.stats:
        print(f"sandbox: {result.summary()}", file=sys.stderr)
    return result.exit_code


def _session_flag(args: argparse.Namespace) -> str | None:
    """What is wrong with a flag given without -d or -t that needs one of them, if any."""
    for flag, given in (("--rm", args.rm), ("--restart", args.restart != "no"),
                        ("--detach-keys", args.detach_keys is not None),
                        ("--record", args.record), ("--log-stdin", args.log_stdin)):
        if given:
            return (f"{flag} needs -d or -t (a sandbox run without them is removed at its end, "
                    "and has no terminal)")
    return None


def _pull_if_missing(ref: str) -> None:
    """A registry reference the store lacks is pulled first, with progress on stderr."""
    from ..images.registry import for_stream, is_remote

    if is_remote(ref):
        from ..images import pull_if_missing

        pull_if_missing(ref, progress=for_stream(sys.stderr))


def _dry_run(spec) -> int:
    from ..runtime import dry_run
    from .sessions import terminal_size

    print(dry_run(spec, terminal_size()).describe())
    return 0


def spec_body(args: argparse.Namespace) -> dict:
    """The spec the flags describe, as the daemon's JSON (it validates it as spec_from_args does).

    What only this side knows is resolved here, as Docker's client does: an
    ``-e KEY`` copied from this environment, a relative ``-v`` source made absolute.
    """
    from . import parse_env

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    env = parse_env(args.env)
    limits = {"memory": args.memory, "memory_swap": args.memory_swap, "cpus": args.cpus,
              "cpuset": args.cpuset, "pids": args.pids, "timeout": args.timeout,
              "idle_timeout": args.idle_timeout, "output": args.output_limit, "disk": args.disk}
    if args.ulimit is not None:
        limits["ulimits"] = list(args.ulimit)
    return {"image": args.image, "command": command, "env": env, "workdir": args.workdir,
            "user": args.user, "hostname": args.hostname, "name": args.name,
            "mounts": [_absolute_volume(v) for v in args.volume], "limits": limits,
            "network": {"mode": args.network, "alias": args.name, "egress": args.egress,
                        "publish": list(args.publish),
                        "allow_host_ports": [_port(p) for p in args.allow_host_port]},
            "cap_add": list(args.cap_add), "cap_drop": list(args.cap_drop),
            "seccomp": seccomp_option(args.security_opt), "userns": args.userns}


def _port(text: str) -> int | str:
    """A port number as the daemon's JSON takes it (anything else is sent as is, and refused)."""
    return int(text) if text.isdigit() else text



def _absolute_volume(text: str) -> str:
    parts = text.split(":")
    if all(parts) and (len(parts) == 2 or (len(parts) == 3 and parts[2] in ("ro", "rw"))):
        parts[0] = os.path.abspath(parts[0])
    return ":".join(parts)


def remote(args: argparse.Namespace, client) -> int:
    """`sandbox run` through a daemon: the same output, messages and exit status as here."""
    from ..client import DaemonError

    if args.dry_run:
        raise DaemonError("--dry-run prints this host's plan: run it without SANDBOX_HOST/--host")
    if args.detach or args.tty:
        from .remote_session import run_supervised

        return run_supervised(args, client, spec_body(args))
    misplaced = _session_flag(args)
    if misplaced:
        from . import fail

        return fail(misplaced)
    received: list[int] = []
    if not args.interactive:
        ended = _run_followed(client, spec_body(args), received)
    else:
        created = client.sandboxes.create(spec_body(args), start=True, remove=True, stdin=True)
        _made(client, created, received)
        _attach(client, created["id"])
        ended = client.sandboxes.wait(created["id"], remove=True)
    if received:
        return 128 + received[0]
    return _report(args, ended)


def _made(client, created: dict, received: list[int]) -> None:
    """The sandbox is made and started: its notes said, and the signals that end a run here
    (as StopOnSignals does) now kill it there, each noted in ``received``."""
    from ..client import DaemonError

    for note in created["warnings"]:
        print(f"sandbox: note: {note}", file=sys.stderr)

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        try:  # on a connection of its own: the run's is busy with its answer
            type(client)(client.transport.host, client.transport.token).sandboxes.kill(created["id"])
        except DaemonError:
            pass  # it has ended meanwhile

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, forward)


def _run_followed(client, body: dict, received: list[int]) -> dict:
    """The run in one request (``sandboxes.run``): its output written as it comes; how it
    ended."""
    import json

    from ..client import DaemonError
    from ..client.api.sandboxes import frames

    ended = None
    response = client.sandboxes.run(body)
    try:
        for stream, data in frames(response):
            if stream == "created":
                _made(client, json.loads(data), received)
            elif stream == "ended":
                ended = json.loads(data)
            else:
                _write_data(stream, data)
    finally:
        response.close()
    if ended is None:
        raise DaemonError("the daemon ended the run's answer before the sandbox ended")
    return ended


def _write_data(stream: str, data: bytes) -> None:
    out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
    out.write(data)
    out.flush()


def _report(args: argparse.Namespace, ended: dict) -> int:
    if ended.get("error") and ended.get("result") is None:
        print(f"sandbox: error: {ended['error']}", file=sys.stderr)
    if ended.get("message"):
        print(f"sandbox: {ended['message']}", file=sys.stderr)
    if args.stats and ended.get("summary"):
        print(f"sandbox: {ended['summary']}", file=sys.stderr)
    return int(ended["exit_code"])


def _attach(client, sandbox_id: str) -> None:
    """-i: the attach WebSocket; this stdin goes in (EOF included), the output comes out."""
    import threading

    from ..client.attach import open_attach

    ws = open_attach(client.transport, sandbox_id)

    def pump() -> None:
        try:
            while data := os.read(0, 65536):
                ws.send(data)
            ws.send(b"")
        except Exception:
            pass

    threading.Thread(target=pump, daemon=True).start()
    try:
        for message in ws:  # then one text message, how it ended: `wait` answers it again
            if isinstance(message, bytes):
                _write_data("stdout" if message[:1] == b"\x01" else "stderr", message[1:])
    finally:
        ws.close()
