"""`sandbox submit` and `sandbox jobs list|show|logs|cancel|wait|artifacts`.

Exit statuses of `submit` (in-process or with --follow) and `jobs wait`:
0 passed, 1 failed, 2 error, 124 timed out, 130 cancelled; 125 bad input or
Redis unreachable (one line on stderr, as for every `sandbox` verb).
"""

from __future__ import annotations

import argparse
import json
import signal

#: the statuses a job can be in (`jobs list --status`; jobs.result's, not imported: --help stays fast)
STATUSES = ("queued", "running", "passed", "failed", "error", "timed_out", "cancelled")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit", help="run a job file (through the queue with --redis)",
        description="Run the job(s) a job file describes. With --redis URL (or "
        "SANDBOX_REDIS_URL) enqueue them and print their ids; otherwise run them here, "
        "printing the live log and a summary.")
    p.add_argument("jobfile", metavar="JOBFILE")
    p.add_argument("-f", "--follow", action="store_true",
                   help="print the live log and the summary; exit with the job's status")
    p.add_argument("--queue", default="default", metavar="NAME", help="queue (default: default)")
    p.add_argument("--redis", metavar="URL", help="Redis URL (default: SANDBOX_REDIS_URL)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the job ids, one per line (the default when stdout is not "
                   "a terminal: id=$(sandbox submit job.toml))")
    p.add_argument("--workspace", metavar="DIR",
                   help="copy DIR into /workspace instead of the job file's workspace (a job "
                   "file may only name a directory of its own tree, reached through no link)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter the job file declares under [params] (repeatable)")
    p.add_argument("--secret", action="append", default=[], metavar="NAME[=@FILE|=VALUE]",
                   help="pass a secret to the steps that list it in `secrets`: its value from "
                   "the environment variable NAME, from FILE, or as given (repeatable); "
                   "masked as *** in the logs and results")
    p.set_defaults(handler=submit, remote=remote_submit)
    jobs = sub.add_parser("jobs", help="list, inspect, follow and cancel queued jobs",
                          description="Inspect the jobs in Redis. --redis URL goes before "
                          "or after the verb.")
    jobs.add_argument("--redis", metavar="URL", help="Redis URL (default: SANDBOX_REDIS_URL)")
    verbs = jobs.add_subparsers(dest="jobs_verb", metavar="VERB", parser_class=sub._parser_class)
    verbs.required = True
    _register_verbs(verbs)
    from .cache_cli import register as register_cache

    register_cache(sub)
    for verb in verbs.choices.values():  # `jobs list --redis URL` as well as `jobs --redis URL list`
        verb.add_argument("--redis", metavar="URL", default=argparse.SUPPRESS,
                          help="Redis URL (default: SANDBOX_REDIS_URL)")


def _register_verbs(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("list", help="the newest jobs",
                         description="The newest jobs first: ID, STATUS, QUEUE, WORKER, SUBMITTED, "
                         "NAME; with --json, an array of their records (id, name, queue, status, "
                         "worker, submitted_at, started_at, ended_at, error).")
    p.add_argument("-n", "--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--status", choices=STATUSES, help="only the jobs in this status")
    p.add_argument("--name", metavar="TEXT", help="only the jobs whose name holds TEXT")
    p.add_argument("--json", action="store_true", help="as a JSON array")
    p.set_defaults(handler=list_jobs, remote=remote_list_jobs)
    p = verbs.add_parser("show", help="a job's status and result")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="the whole record as JSON")
    p.set_defaults(handler=show, remote=remote_show)
    p = verbs.add_parser("logs", help="a job's log")
    p.add_argument("id")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")
    p.add_argument("--service", metavar="NAME",
                   help="only the output of the job's service NAME (folded in the job's log)")
    p.set_defaults(handler=logs, remote=remote_logs)
    p = verbs.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("id")
    p.set_defaults(handler=cancel, remote=remote_cancel)
    p = verbs.add_parser("wait", help="wait for a job; print its summary, exit with its status")
    p.add_argument("id")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    p.set_defaults(handler=wait, remote=remote_wait)
    p = verbs.add_parser("artifacts", help="save a job's stored artifacts")
    p.add_argument("id")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="directory (default .)")
    p.set_defaults(handler=artifacts, remote=remote_artifacts)


def _conn(args: argparse.Namespace):
    from sandbox import SandboxError

    from .client import connect, redis_url

    url = redis_url(args.redis)
    if not url:
        raise SandboxError("no queue: pass --redis URL or set SANDBOX_REDIS_URL")
    return connect(url)


def submit(args: argparse.Namespace) -> int:
    from .client import redis_url
    from .jobfile import load
    from .secrets import read_secret_args

    secrets = read_secret_args(args.secret)
    _hide_given_secrets(args.secret, secrets)
    specs = load(args.jobfile, workspace=args.workspace, params=_params(args.param),
                 secrets=secrets.keys())
    if redis_url(args.redis) is None:
        return max(_run_here(spec, secrets) for spec in specs)
    from .client import submit as enqueue

    conn = _conn(args)
    ids = [enqueue(conn, spec, queue=args.queue, secrets=secrets) for spec in specs]
    _print_submitted(args, ids, [spec.name for spec in specs])
    if not args.follow:
        return 0
    return max(_follow(conn, job_id) for job_id in ids)


def _print_submitted(args: argparse.Namespace, ids: list[str], names: list[str]) -> None:
    """`ID  NAME` per job on a terminal; only the ids with --quiet or into a pipe or file."""
    import sys

    quiet = args.quiet or not sys.stdout.isatty()
    for job_id, name in zip(ids, names):
        print(job_id if quiet else f"{job_id}  {name}", flush=True)


def _params(given: list[str]) -> dict[str, str]:
    from .validator import param_args

    return param_args(given)


def _hide_given_secrets(args: list[str], secrets: dict[str, str]) -> None:
    """Values given on the command line (--secret NAME=VALUE) shown to ps(1) as ***."""
    literal = [secrets[name] for name, sep, given in (a.partition("=") for a in args)
               if sep and not given.startswith("@")]
    if literal:
        from sandbox import hide_from_ps

        hide_from_ps(literal)


def _run_here(spec, secrets=None) -> int:
    """The embedded mode: run in this process; first Ctrl-C cancels the job cleanly."""
    from .cancellation import Cancel
    from .client import run_local
    from .render import Renderer, summary
    from .result import EXIT_STATUS

    cancel = Cancel()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        result = run_local(spec, on_event=Renderer().write, cancel=cancel, secrets=secrets)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(summary(result), flush=True)
    return EXIT_STATUS[result.status]


def _follow(conn, job_id: str, timeout: float | None = None) -> int:
    from . import client
    from .render import Renderer, summary
    from .result import EXIT_STATUS

    result = client.wait(conn, job_id, timeout=timeout, on_event=Renderer().write)
    print(summary(result), flush=True)
    return EXIT_STATUS[result.status]


def list_jobs(args: argparse.Namespace) -> int:
    from . import store

    _check_limit(args)
    return _print_jobs(args, store.list_jobs(_conn(args), args.limit, status=args.status,
                                             name=args.name))


def _check_limit(args: argparse.Namespace) -> None:
    from .errors import JobError

    if not 1 <= args.limit <= 1000:
        raise JobError(f"invalid --limit {args.limit}: expected 1 to 1000")


def _print_jobs(args: argparse.Namespace, jobs: list[dict[str, str]]) -> int:
    import time

    if args.json:
        print(json.dumps([_listed(r) for r in jobs], indent=2))
        return 0
    rows = [(r["id"], r.get("status", "?"), r.get("queue", ""), r.get("worker") or "-",
             time.strftime("%H:%M:%S", time.localtime(float(r.get("submitted_at") or 0))),
             r.get("name", "")) for r in jobs]
    header = ("ID", "STATUS", "QUEUE", "WORKER", "SUBMITTED", "NAME")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0


#: the fields of a job `jobs list --json` shows, and which of them are numbers
LISTED = ("id", "name", "queue", "status", "worker", "owner", "submitted_at", "started_at",
          "ended_at", "error")
TIMES = ("submitted_at", "started_at", "ended_at")


def _listed(row: dict[str, str]) -> dict[str, object]:
    """A job's record as `jobs list --json` prints it: times as numbers, absent ones as null."""
    out: dict[str, object] = {}
    for name in LISTED:
        value = row.get(name) or None
        out[name] = float(value) if value is not None and name in TIMES else value
    return out


def show(args: argparse.Namespace) -> int:
    from . import store

    conn = _conn(args)
    fields = store.read(conn, args.id)
    for name in ("spec", "result"):
        if fields.get(name):
            fields[name] = json.loads(fields[name])
    return _show(args, fields, store.result_of(conn, args.id))


def _show(args: argparse.Namespace, fields: dict, result) -> int:
    from .render import summary

    if args.json:
        print(json.dumps(fields, indent=2))
        return 0
    if result is None:
        print(f"job {args.id} {fields.get('name', '')!r}: {fields['status']}"
              + (f" on {fields['worker']}" if fields.get("worker") else ""))
    else:
        print(summary(result))
    return 0


def logs(args: argparse.Namespace) -> int:
    from .logstream import follow
    from .render import Renderer

    renderer = Renderer(service=args.service)
    for event in follow(_conn(args), args.id, follow=args.follow):
        renderer.write(event)
    return 0


def cancel(args: argparse.Namespace) -> int:
    from . import store

    return _cancelled(args, store.request_cancel(_conn(args), args.id))


def _cancelled(args: argparse.Namespace, before: str) -> int:
    if before == "queued":
        print(f"{args.id}: cancelled (it had not started)")
    elif before == "running":
        print(f"{args.id}: cancelling (its worker stops the sandbox within a second)")
    else:
        print(f"{args.id}: already {before}")
    return 0


def wait(args: argparse.Namespace) -> int:
    from . import client
    from .errors import JobError
    from .render import summary
    from .result import EXIT_STATUS

    try:
        result = client.wait(_conn(args), args.id, timeout=args.timeout)
    except TimeoutError as exc:
        raise JobError(str(exc)) from exc
    print(summary(result), flush=True)
    return EXIT_STATUS[result.status]


def artifacts(args: argparse.Namespace) -> int:
    from . import store

    return _save_artifacts(args, store.artifacts(_conn(args), args.id))


def _save_artifacts(args: argparse.Namespace, stored: dict[str, bytes]) -> int:
    import os

    for raw_path, data in sorted(stored.items()):
        rel = os.path.normpath(raw_path)
        if rel.startswith("..") or os.path.isabs(rel):
            continue
        dest = os.path.join(args.output, rel)
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)
        print(dest)
    return 0


# -- through a daemon (SANDBOX_HOST / --host): the same output and exit statuses ----------

def remote_submit(args: argparse.Namespace, client) -> int:
    """Validated and packed here (the same errors as here), run where the daemon runs jobs.

    Secrets are read here (environment, file or as given), as `submit` reads
    them, and sent in the request's body: the daemon never reads a file of its own for one.
    """
    from pathlib import Path

    from .jobfile import load
    from .secrets import read_secret_args
    from .workspace import pack

    secrets = read_secret_args(args.secret)
    _hide_given_secrets(args.secret, secrets)
    params = _params(args.param)
    specs = load(args.jobfile, workspace=args.workspace, params=params, secrets=secrets.keys())
    packed = pack(specs[0].workspace) if specs[0].workspace else None
    answer = client.jobs.submit(args.jobfile, Path(args.jobfile).read_bytes(), workspace=packed,
                                queue=args.queue, params=params, secrets=secrets)
    if answer["queued"]:
        _print_submitted(args, [job["id"] for job in answer["jobs"]], [job["name"] for job in answer["jobs"]])
        if not args.follow:
            return 0
    # a daemon without Redis runs them itself: live log and summary, as `submit` without Redis
    return max(_remote_follow(client, job["id"], cancel_on_interrupt=not answer["queued"])
               for job in answer["jobs"])


def _remote_follow(client, job_id: str, *, cancel_on_interrupt: bool = False) -> int:
    from .events import LogEvent
    from .render import Renderer

    previous = None
    if cancel_on_interrupt:  # as the in-process run: the first Ctrl-C cancels the job
        previous = signal.signal(signal.SIGINT, lambda *_: type(client)(
            client.transport.host, client.transport.token).jobs.cancel(job_id))
    try:
        renderer = Renderer()
        for data in client.jobs.events(job_id):
            renderer.write(LogEvent.from_json(data))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return _remote_summary(client, job_id)


def _remote_summary(client, job_id: str) -> int:
    from .render import summary
    from .result import EXIT_STATUS, JobResult

    fields = client.jobs.show(job_id)
    result = JobResult.from_dict(fields["result"])
    print(summary(result), flush=True)
    return EXIT_STATUS[result.status]


def remote_list_jobs(args: argparse.Namespace, client) -> int:
    _check_limit(args)
    rows = client.jobs.list(limit=args.limit, status=args.status, name=args.name)
    return _print_jobs(args, [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows])


def remote_show(args: argparse.Namespace, client) -> int:
    from .result import FINAL, JobResult

    fields = client.jobs.show(args.id)
    final = fields.get("status") in FINAL and fields.get("result")
    return _show(args, fields, JobResult.from_dict(fields["result"]) if final else None)


def remote_logs(args: argparse.Namespace, client) -> int:
    from .events import LogEvent
    from .render import Renderer

    renderer = Renderer(service=args.service)
    for data in client.jobs.events(args.id, follow=args.follow, service=args.service):
        renderer.write(LogEvent.from_json(data))
    return 0


def remote_cancel(args: argparse.Namespace, client) -> int:
    return _cancelled(args, client.jobs.cancel(args.id)["before"])


def remote_wait(args: argparse.Namespace, client) -> int:
    import time

    from .errors import JobError
    from .result import FINAL

    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while client.jobs.show(args.id).get("status") not in FINAL:
        if deadline is not None and time.monotonic() >= deadline:
            raise JobError(f"job {args.id} did not end within the timeout")
        time.sleep(0.2)
    return _remote_summary(client, args.id)


def remote_artifacts(args: argparse.Namespace, client) -> int:
    listed = client.jobs.artifacts(args.id)
    return _save_artifacts(args, {a["path"]: client.jobs.artifact(args.id, a["path"])
                                  for a in listed if a["stored"]})
