"""sandbox: run a command in an isolated Linux container, and leave nothing behind.

The public API::

    from sandbox import SandboxSpec, Limits, Mount, NetworkSpec, run, Sandbox
    result = run(SandboxSpec(image="busybox", command=["sh", "-c", "echo hi"]))
    with Sandbox(spec, on_output=callback) as sb:
        result = sb.wait()

Everything not exported here is private to the engine.
"""

from .errors import (CommandNotExecutable, CommandNotFound, HostError, ImageError, ImageNotFound,
                     LimitError, NetworkError, SandboxError, SetupError, SpecError, StateError)
from .hostlimits import capped as host_caps
from .logs import LogRecord
from .redact import redact_url
from .result import Result
from .runtime import Sandbox, run
from .spec import Limits, Mount, NetworkSpec, SandboxSpec, Ulimit

__all__ = [
    "SandboxSpec", "Limits", "Mount", "NetworkSpec", "Ulimit", "Sandbox", "run", "Result",
    "LogRecord", "SandboxError", "SpecError", "ImageError", "ImageNotFound", "HostError",
    "SetupError", "CommandNotFound", "CommandNotExecutable", "NetworkError", "StateError",
    "LimitError", "host_caps", "redact_url",
]
__version__ = "0.1.0"
