"""sandbox: run a command in an isolated Linux container, and leave nothing behind.

The public API::

    from sandbox import SandboxSpec, Limits, Mount, NetworkSpec, run, Sandbox, build_image
    result = run(SandboxSpec(image="busybox", command=["sh", "-c", "echo hi"]))
    with Sandbox(spec, on_output=callback) as sb:
        result = sb.wait()
    image = build_image("path/to/context", tags=("app:1",))   # a Sandboxfile, built

Everything not exported here is private to the engine. ``Sandbox``, ``run``,
``Result``, ``LogRecord`` and ``build_image`` are imported when first used (PEP 562): a
command that never runs a container (``sandbox build`` with every step
cached, ``sandbox images``) does not pay for loading the runtime.
"""

from importlib import import_module
from typing import Any

from .errors import (BuildFileError, BuildStepFailed, CommandNotExecutable, CommandNotFound,
                     HostError, ImageError, ImageNotFound, LimitError, NetworkError, SandboxError,
                     SetupError, SpecError, StateError)
from .hostlimits import capped as host_caps
from .redact import redact_url
from .spec import Limits, Mount, NetworkSpec, SandboxSpec, Ulimit

#: Public names loaded on first use, and the module that holds each.
_LAZY = {"Sandbox": "runtime", "run": "runtime", "Result": "result", "LogRecord": "logs",
         "build_image": "images.build"}

__all__ = [
    "SandboxSpec", "Limits", "Mount", "NetworkSpec", "Ulimit", "Sandbox", "run", "Result",
    "LogRecord", "SandboxError", "SpecError", "ImageError", "ImageNotFound", "HostError",
    "SetupError", "CommandNotFound", "CommandNotExecutable", "NetworkError", "StateError",
    "LimitError", "BuildFileError", "BuildStepFailed", "build_image", "host_caps", "redact_url",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
