"""A thin client of the sandbox daemon: what `sandbox --host ...` (or SANDBOX_HOST) uses.

As docker-py splits it: ``Transport`` speaks HTTP (unix socket, TCP, TLS),
``api/`` has one module per resource whose calls return the daemon's JSON
as dicts, and ``Client`` gathers them::

    from sandbox.client import Client
    client = Client.from_env()                  # SANDBOX_HOST, SANDBOX_TOKEN
    sb = client.sandboxes.create({"image": "busybox", "command": ["true"]}, start=True)
    result = client.sandboxes.wait(sb["id"])    # the engine's Result as a dict
    client.sandboxes.remove(sb["id"])

Nothing here imports the engine or a web framework: the CLI as a client
starts about as fast as Python itself. Nor does anything on its way (this
package, ``sandbox``, ``sandbox.errors``, ``sandbox.cli``) import ``typing``,
which costs a bare interpreter more than this package does: its names are
for the checker only, under a ``TYPE_CHECKING = False`` of their own.
Errors are ``DaemonError`` (the daemon's one-line message, the HTTP status,
the CLI's exit status).
"""

from __future__ import annotations

import os
from functools import cached_property

from .transport import DEFAULT_SOCKET, DaemonError, Transport

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from .api.classes import ClassesAPI
    from .api.images import ImagesAPI
    from .api.jobs import JobsAPI
    from .api.networks import NetworksAPI
    from .api.sandboxes import SandboxesAPI
    from .api.system import SystemAPI

__all__ = ["DEFAULT_SOCKET", "Client", "DaemonError", "Transport", "host_from_env"]


def host_from_env(explicit: str | None = None) -> str | None:
    """``--host``, else SANDBOX_HOST, else None (the CLI runs the engine itself)."""
    return explicit or os.environ.get("SANDBOX_HOST") or None


class Client:
    """One daemon, its resources as attributes (each module loaded when first used: a
    command uses one or two)."""

    def __init__(self, host: str, token: str | None = None) -> None:
        self.transport = Transport(host, token)

    @cached_property
    def sandboxes(self) -> SandboxesAPI:
        from .api.sandboxes import SandboxesAPI

        return SandboxesAPI(self.transport)

    @cached_property
    def images(self) -> ImagesAPI:
        from .api.images import ImagesAPI

        return ImagesAPI(self.transport)

    @cached_property
    def networks(self) -> NetworksAPI:
        from .api.networks import NetworksAPI

        return NetworksAPI(self.transport)

    @cached_property
    def jobs(self) -> JobsAPI:
        from .api.jobs import JobsAPI

        return JobsAPI(self.transport)

    @cached_property
    def system(self) -> SystemAPI:
        from .api.system import SystemAPI

        return SystemAPI(self.transport)

    @cached_property
    def classes(self) -> ClassesAPI:
        from .api.classes import ClassesAPI

        return ClassesAPI(self.transport)

    @classmethod
    def from_env(cls, host: str | None = None, token: str | None = None) -> "Client":
        """A client of ``host`` (else SANDBOX_HOST, else the default socket), token from SANDBOX_TOKEN."""
        return cls(host_from_env(host) or f"unix://{DEFAULT_SOCKET}",
                   token or os.environ.get("SANDBOX_TOKEN") or None)

    def close(self) -> None:
        self.transport.close()
