"""sandbox: run a command in an isolated Linux container, and leave nothing behind.

The public API::

    from sandbox import SandboxSpec, Limits, Mount, NetworkSpec, run, Sandbox
    result = run(SandboxSpec(image="busybox", command=["sh", "-c", "echo hi"]))
    with Sandbox(spec, on_output=callback) as sb:
        result = sb.wait()
    result = Sandbox(spec).run(on_started=..., stop=StopOnSignals(signal.SIGTERM))

What the packages built on the engine (jobs, worker, pytest_sandbox, server)
use, they import from here; everything not exported here is private to the
engine:

- running: ``Sandbox``, ``run``, ``dry_run`` (the plan a run would perform),
  ``Result``, ``LogRecord``, ``StopOnSignals`` (a stop hook for
  ``Sandbox.run``), ``single_threaded`` (whether this process may fork a
  Python target into a sandbox);
- interactive programs: ``spawn(spec)`` (a new sandbox whose command runs on
  a terminal) and ``Sandbox.spawn(command)`` return a ``Spawned``, driven as
  pexpect drives a program (``send``, ``expect``; ``ExpectTimeout``,
  ``ExpectEOF``); ``Exec`` and ``exec_into`` (a process in a running sandbox,
  by object or by id or name: `sandbox exec`);
- sandboxes that outlive their client (``sandbox.supervisor``), for the CLI
  and the daemon alike: ``run_detached(spec, SupervisorOptions(...))``
  (``RestartPolicy``), ``attach_to(id)`` (the frames a WebSocket carries:
  ``sandbox.supervisor.protocol``), and the verbs ``start_sandbox``,
  ``stop_sandbox``, ``restart_sandbox``, ``kill_sandbox``, ``wait_sandbox``,
  ``remove_sandbox``;
- specs: ``SandboxSpec``, ``Limits``, ``Mount``, ``NetworkSpec``, ``Ulimit``,
  and the units they accept (``parse_size``, ``parse_duration``,
  ``format_size``, ``format_duration``);
- Python targets forked by a copy of the caller: ``ForkServer``,
  ``ServedTarget`` (see ``sandbox.process.forkserver``);
- images: ``get_image``, ``import_image``, ``Image``;
- untrusted trees and archives copied into a directory without escaping it
  (a job's workspace): ``copy_tree_into``, ``unpack_tar_into``, ``UnpackError``;
- the host: ``lib_dir`` and ``run_dir`` (where state lives), ``process_alive``
  (a pid and start time still the same process; ``own_start_time`` is this
  process's, for records that name it), ``write_owner`` and ``owner_gone``
  (a directory's owner file, for directories gc may remove),
  ``collect_garbage`` (what `sandbox gc` does), ``why_unavailable`` (why this
  host cannot make sandboxes, or None), ``host_caps`` (the limits this host
  caps, as lines to show), ``leave_to_main_thread`` (for helper threads);
- ``redact_url``: a URL fit to print (no password);
- errors: the SandboxError tree (``sandbox.errors`` draws it).
"""

from __future__ import annotations

from typing import Any

from .errors import (
    CommandNotExecutable,
    CommandNotFound,
    HostError,
    ImageError,
    ImageNotFound,
    LimitError,
    NetworkError,
    SandboxError,
    SetupError,
    SpecError,
    StateError,
)
from .hostlimits import capped as host_caps
from .logs import LogRecord
from .redact import redact_url
from .result import Result
from .runtime import Sandbox, dry_run, run
from .spec import Limits, Mount, NetworkSpec, SandboxSpec, Ulimit
from .units import format_duration, format_size, parse_duration, parse_size

__all__ = [
    "CommandNotExecutable",
    "CommandNotFound",
    "Exec",
    "ExpectEOF",
    "ExpectTimeout",
    "ForkServer",
    "HostError",
    "Image",
    "ImageError",
    "ImageNotFound",
    "LimitError",
    "Limits",
    "LogRecord",
    "Mount",
    "NetworkError",
    "NetworkSpec",
    "RestartPolicy",
    "Result",
    "Sandbox",
    "SandboxError",
    "SandboxSpec",
    "ServedTarget",
    "SetupError",
    "Spawned",
    "SpecError",
    "StateError",
    "StopOnSignals",
    "SupervisorOptions",
    "Ulimit",
    "UnpackError",
    "attach_to",
    "collect_garbage",
    "copy_tree_into",
    "dry_run",
    "exec_into",
    "format_duration",
    "format_size",
    "get_image",
    "host_caps",
    "import_image",
    "kill_sandbox",
    "leave_to_main_thread",
    "lib_dir",
    "own_start_time",
    "owner_gone",
    "parse_duration",
    "parse_size",
    "process_alive",
    "redact_url",
    "remove_sandbox",
    "restart_sandbox",
    "run",
    "run_detached",
    "run_dir",
    "single_threaded",
    "spawn",
    "start_sandbox",
    "stop_sandbox",
    "unpack_tar_into",
    "wait_sandbox",
    "why_unavailable",
    "write_owner",
]
__version__ = "0.1.0"

#: Exported names loaded on first use: (module, attribute).
_LAZY = {
    "StopOnSignals": (".signals", "StopOnSignals"),
    "Spawned": (".spawned", "Spawned"),
    "ExpectTimeout": (".spawned", "ExpectTimeout"),
    "ExpectEOF": (".spawned", "ExpectEOF"),
    "spawn": (".runtime", "spawn"),
    "Exec": (".execute", "Exec"),
    "exec_into": (".execute", "exec_into"),
    "SupervisorOptions": (".supervisor.options", "SupervisorOptions"),
    "RestartPolicy": (".supervisor.options", "RestartPolicy"),
    "run_detached": (".supervisor.lifecycle", "run_detached"),
    "start_sandbox": (".supervisor.lifecycle", "start"),
    "stop_sandbox": (".supervisor.lifecycle", "stop"),
    "restart_sandbox": (".supervisor.lifecycle", "restart"),
    "kill_sandbox": (".supervisor.lifecycle", "kill"),
    "wait_sandbox": (".supervisor.lifecycle", "wait"),
    "remove_sandbox": (".supervisor.lifecycle", "remove"),
    "attach_to": (".supervisor.lifecycle", "attach_to"),
    "leave_to_main_thread": (".signals", "leave_to_main_thread"),
    "single_threaded": (".process.launcher", "single_threaded"),
    "ForkServer": (".process.forkserver", "ForkServer"),
    "ServedTarget": (".process.forkserver", "ServedTarget"),
    "get_image": (".images", "get"),
    "import_image": (".images", "import_image"),
    "Image": (".images", "Image"),
    "lib_dir": (".state", "lib_dir"),
    "run_dir": (".state", "run_dir"),
    "process_alive": (".linux.proc", "process_alive"),
    "own_start_time": (".linux.proc", "own_start_time"),
    "collect_garbage": (".gc", "collect"),
    "why_unavailable": (".doctor", "why_unavailable"),
    "write_owner": (".state", "write_owner"),
    "owner_gone": (".state", "owner_gone"),
    "UnpackError": (".images.unpack", "UnpackError"),
    "copy_tree_into": (".images.untrusted", "copy_tree_into"),
    "unpack_tar_into": (".images.untrusted", "unpack_tar_into"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module, __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
