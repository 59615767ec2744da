"""sandbox: run a command in an isolated Linux container, and leave nothing behind.

The public API::

    from sandbox import SandboxSpec, Limits, Mount, NetworkSpec, run, Sandbox, build_image
    result = run(SandboxSpec(image="busybox", command=["sh", "-c", "echo hi"]))
    with Sandbox(spec, on_output=callback) as sb:
        result = sb.wait()
    result = Sandbox(spec).run(on_started=..., stop=StopOnSignals(signal.SIGTERM))
    image = build_image("path/to/context", tags=("app:1",))   # a Sandboxfile, built

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
  (``RestartPolicy``), ``create_detached`` (made, not started),
  ``supervised_status(ref)`` (its state, options and owner), ``attach_to(id)`` (the frames a WebSocket carries:
  ``sandbox.supervisor.protocol``), and the verbs ``start_sandbox``,
  ``stop_sandbox``, ``restart_sandbox``, ``kill_sandbox``, ``wait_sandbox``
  (``remove_sandbox`` removes supervised sandboxes too);
- specs: ``SandboxSpec``, ``Limits``, ``Mount``, ``NetworkSpec``, ``Publish`` (a port
  published on the host's loopback, parsed from ``HOSTPORT:PORT``), ``Ulimit``,
  and the units they accept (``parse_size``, ``parse_duration``,
  ``format_size``, ``format_duration``); ``USERNS_MODES`` (what
  ``SandboxSpec.userns`` takes);
- Python targets forked by a copy of the caller: ``ForkServer``,
  ``ServedTarget`` (see ``sandbox.process.forkserver``);
- inside a sandbox, a copy of a process in namespaces nested in the
  sandbox's, made without privilege: ``fork_nested`` (``sandbox.nested``; with
  ``seccomp="default"`` the copy stacks Docker's default filter, for a sandbox under
  the ``nested`` profile), and ``fork_confined`` (a plain fork so confined);
  ``fork_nested(own_root=True)`` gives it a root filesystem of its own in a sandbox
  made with ``SandboxSpec.root_view`` (``NESTED_ROOT_ENV`` in its environment says
  whether it got one), ``delegated_cgroup(name)`` a cgroup of its own in the subtree
  of a sandbox made with ``SandboxSpec.delegate_cgroup`` (None elsewhere);
- images: ``get_image``, ``import_image`` (``import_image_archive``: a rootfs
  tarball from a stream, an upload), ``tag_image``, ``commit_sandbox`` (a live
  sandbox's changes as an image), ``Image``, ``build_image`` (a Sandboxfile built
  into the store; ``build_plan_text``: what a dry run prints; ``BuildCancel``: stops
  a build from another thread, which then raises ``BuildCancelled``;
  ``build_error_text`` prints its BuildFileError with the lines it points at),
  ``uploaded_context`` (a build context
  that came as a tar, unpacked as safely as a workspace), ``pull_image`` and
  ``push_image`` (a registry copy; ``registry_progress(stream)`` shows its
  progress as `sandbox pull` does);
- untrusted trees and archives copied into a directory without escaping it
  (a job's workspace, its caches): ``copy_tree_into``, ``unpack_tar_into``,
  ``UnpackError``;
- networks a process makes for its own sandboxes (a job's services and
  steps): ``create_network`` (``temporary=True``: `sandbox gc` removes it
  once its maker is gone) and ``remove_network``;
- the host: ``lib_dir`` and ``run_dir`` (where state lives), ``process_alive``
  (a pid and start time still the same process; ``own_start_time`` is this
  process's, for records that name it), ``die_with_parent`` (a helper process
  that ends with the process that started it), ``write_owner`` and ``owner_gone``
  (a directory's owner file, for directories gc may remove),
  ``collect_garbage`` (what `sandbox gc` does), ``why_unavailable`` (why this
  host cannot make sandboxes, or None), ``host_caps`` (the limits this host
  caps, as lines to show), ``leave_to_main_thread`` (for helper threads);
- what exists on this host as plain data, for the listing verbs and the
  daemon alike (``sandbox.inventory``): ``sandbox_rows``, ``remove_sandbox``,
  ``sandbox_log``, ``image_rows``, ``inspect_image``, ``remove_image``,
  ``network_rows``, ``create_network``, ``remove_network``; ``read_log`` (a
  sandbox's log file as LogRecords), ``host_checks`` (`sandbox doctor`'s checks);
- spec helpers for requests: ``check_name`` (a sandbox name) and
  ``capabilities_from`` (Docker's --cap-add/--cap-drop as a capability set),
  ``DEFAULT_CAPABILITIES`` (the set a sandbox gets when it asks for none);
- ``redact_url``: a URL fit to print (no password); ``hide_from_ps``: this
  process's command line shown to ps(1) with some values hidden;
- errors: the SandboxError tree (``sandbox.errors`` draws it), ``BuildFileError``
  and ``BuildStepFailed`` among them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:  # what the checker sees: the names below, as _LAZY loads them at run time
    from .cgroups.delegated import delegated_cgroup
    from .doctor import run_checks as host_checks
    from .doctor import why_unavailable
    from .errors import (
        BuildFileError,
        BuildStepFailed,
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
    from .execute import Exec, exec_into
    from .gc import collect as collect_garbage
    from .hostlimits import capped as host_caps
    from .images import Image, import_image, import_image_archive, tag_image
    from .images import get as get_image
    from .images.build import build_image, build_plan_text, uploaded_context
    from .images.build.cancel import BuildCancel, BuildCancelled
    from .images.build.source import render as build_error_text
    from .images.commit import commit_sandbox
    from .images.registry import for_stream as registry_progress
    from .images.registry import pull as pull_image
    from .images.registry import push as push_image
    from .images.unpack import UnpackError
    from .images.untrusted import copy_tree_into, unpack_tar_into
    from .inventory import (
        create_network,
        image_rows,
        inspect_image,
        network_rows,
        remove_image,
        remove_network,
        remove_sandbox,
        sandbox_log,
        sandbox_rows,
    )
    from .linux.proc import die_with_parent, own_start_time, process_alive
    from .logs import LogRecord, read_log
    from .nested import ROOT_ENV as NESTED_ROOT_ENV
    from .nested import fork_confined, fork_nested
    from .process.forkserver import ForkServer, ServedTarget
    from .process.launcher import single_threaded
    from .redact import hide_from_ps, redact_url
    from .result import Result
    from .runtime import Sandbox, dry_run, run, spawn
    from .signals import StopOnSignals, leave_to_main_thread
    from .spawned import ExpectEOF, ExpectTimeout, Spawned
    from .spec import (
        DEFAULT_CAPABILITIES,
        USERNS_MODES,
        Limits,
        Mount,
        NetworkSpec,
        Publish,
        SandboxSpec,
        Ulimit,
        capabilities_from,
        check_name,
    )
    from .state import lib_dir, owner_gone, run_dir, write_owner
    from .supervisor.lifecycle import attach_to, create_detached, run_detached
    from .supervisor.lifecycle import describe as supervised_status
    from .supervisor.lifecycle import kill as kill_sandbox
    from .supervisor.lifecycle import restart as restart_sandbox
    from .supervisor.lifecycle import start as start_sandbox
    from .supervisor.lifecycle import stop as stop_sandbox
    from .supervisor.lifecycle import wait as wait_sandbox
    from .supervisor.options import RestartPolicy, SupervisorOptions
    from .units import format_duration, format_size, parse_duration, parse_size

__all__ = [
    "DEFAULT_CAPABILITIES",
    "NESTED_ROOT_ENV",
    "USERNS_MODES",
    "BuildCancel",
    "BuildCancelled",
    "BuildFileError",
    "BuildStepFailed",
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
    "Publish",
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
    "build_error_text",
    "build_image",
    "build_plan_text",
    "capabilities_from",
    "check_name",
    "collect_garbage",
    "commit_sandbox",
    "copy_tree_into",
    "create_detached",
    "create_network",
    "delegated_cgroup",
    "die_with_parent",
    "dry_run",
    "exec_into",
    "fork_confined",
    "fork_nested",
    "format_duration",
    "format_size",
    "get_image",
    "hide_from_ps",
    "host_caps",
    "host_checks",
    "image_rows",
    "import_image",
    "import_image_archive",
    "inspect_image",
    "kill_sandbox",
    "leave_to_main_thread",
    "lib_dir",
    "network_rows",
    "own_start_time",
    "owner_gone",
    "parse_duration",
    "parse_size",
    "process_alive",
    "pull_image",
    "push_image",
    "read_log",
    "redact_url",
    "registry_progress",
    "remove_image",
    "remove_network",
    "remove_sandbox",
    "restart_sandbox",
    "run",
    "run_detached",
    "run_dir",
    "sandbox_log",
    "sandbox_rows",
    "single_threaded",
    "spawn",
    "start_sandbox",
    "stop_sandbox",
    "supervised_status",
    "tag_image",
    "unpack_tar_into",
    "uploaded_context",
    "wait_sandbox",
    "why_unavailable",
    "write_owner",
]
__version__ = "0.1.0"

#: Every exported name is loaded on first use (PEP 562): (module, attribute). So
#: ``import sandbox`` costs nothing, and a thin client of the daemon that imports
#: ``sandbox.cli`` or ``sandbox.client`` never loads the engine.
_LAZY = {
    "BuildFileError": (".errors", "BuildFileError"),
    "BuildStepFailed": (".errors", "BuildStepFailed"),
    "build_image": (".images.build", "build_image"),
    "build_plan_text": (".images.build", "build_plan_text"),
    "BuildCancel": (".images.build.cancel", "BuildCancel"),
    "BuildCancelled": (".images.build.cancel", "BuildCancelled"),
    "commit_sandbox": (".images.commit", "commit_sandbox"),
    "import_image_archive": (".images", "import_image_archive"),
    "tag_image": (".images", "tag_image"),
    "build_error_text": (".images.build.source", "render"),
    "uploaded_context": (".images.build", "uploaded_context"),
    "pull_image": (".images.registry", "pull"),
    "push_image": (".images.registry", "push"),
    "registry_progress": (".images.registry", "for_stream"),
    "CommandNotExecutable": (".errors", "CommandNotExecutable"),
    "CommandNotFound": (".errors", "CommandNotFound"),
    "HostError": (".errors", "HostError"),
    "ImageError": (".errors", "ImageError"),
    "ImageNotFound": (".errors", "ImageNotFound"),
    "LimitError": (".errors", "LimitError"),
    "NetworkError": (".errors", "NetworkError"),
    "SandboxError": (".errors", "SandboxError"),
    "SetupError": (".errors", "SetupError"),
    "SpecError": (".errors", "SpecError"),
    "StateError": (".errors", "StateError"),
    "host_caps": (".hostlimits", "capped"),
    "LogRecord": (".logs", "LogRecord"),
    "redact_url": (".redact", "redact_url"),
    "Result": (".result", "Result"),
    "Sandbox": (".runtime", "Sandbox"),
    "dry_run": (".runtime", "dry_run"),
    "run": (".runtime", "run"),
    "Limits": (".spec", "Limits"),
    "USERNS_MODES": (".spec", "USERNS_MODES"),
    "DEFAULT_CAPABILITIES": (".spec", "DEFAULT_CAPABILITIES"),
    "Mount": (".spec", "Mount"),
    "NetworkSpec": (".spec", "NetworkSpec"),
    "SandboxSpec": (".spec", "SandboxSpec"),
    "Ulimit": (".spec", "Ulimit"),
    "Publish": (".spec", "Publish"),
    "format_duration": (".units", "format_duration"),
    "format_size": (".units", "format_size"),
    "parse_duration": (".units", "parse_duration"),
    "parse_size": (".units", "parse_size"),
    "StopOnSignals": (".signals", "StopOnSignals"),
    "leave_to_main_thread": (".signals", "leave_to_main_thread"),
    "single_threaded": (".process.launcher", "single_threaded"),
    "ForkServer": (".process.forkserver", "ForkServer"),
    "ServedTarget": (".process.forkserver", "ServedTarget"),
    "fork_nested": (".nested", "fork_nested"),
    "NESTED_ROOT_ENV": (".nested", "ROOT_ENV"),
    "delegated_cgroup": (".cgroups.delegated", "delegated_cgroup"),
    "fork_confined": (".nested", "fork_confined"),
    "get_image": (".images", "get"),
    "import_image": (".images", "import_image"),
    "Image": (".images", "Image"),
    "lib_dir": (".state", "lib_dir"),
    "run_dir": (".state", "run_dir"),
    "process_alive": (".linux.proc", "process_alive"),
    "own_start_time": (".linux.proc", "own_start_time"),
    "die_with_parent": (".linux.proc", "die_with_parent"),
    "collect_garbage": (".gc", "collect"),
    "host_checks": (".doctor", "run_checks"),
    "read_log": (".logs", "read_log"),
    "check_name": (".spec", "check_name"),
    "capabilities_from": (".spec", "capabilities_from"),
    "sandbox_rows": (".inventory", "sandbox_rows"),
    "remove_sandbox": (".inventory", "remove_sandbox"),
    "sandbox_log": (".inventory", "sandbox_log"),
    "image_rows": (".inventory", "image_rows"),
    "inspect_image": (".inventory", "inspect_image"),
    "remove_image": (".inventory", "remove_image"),
    "network_rows": (".inventory", "network_rows"),
    "create_network": (".inventory", "create_network"),
    "remove_network": (".inventory", "remove_network"),
    "why_unavailable": (".doctor", "why_unavailable"),
    "write_owner": (".state", "write_owner"),
    "owner_gone": (".state", "owner_gone"),
    "UnpackError": (".images.unpack", "UnpackError"),
    "copy_tree_into": (".images.untrusted", "copy_tree_into"),
    "unpack_tar_into": (".images.untrusted", "unpack_tar_into"),
    "hide_from_ps": (".redact", "hide_from_ps"),
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
    "attach_to": (".supervisor.lifecycle", "attach_to"),
    "create_detached": (".supervisor.lifecycle", "create_detached"),
    "supervised_status": (".supervisor.lifecycle", "describe"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module, __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
