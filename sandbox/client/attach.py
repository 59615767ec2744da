"""The attach WebSocket of a sandbox or an exec (`run -i`, `run -t`, `attach`, `exec`
through a daemon).

Loaded only for those: the websockets library costs more to import than
the rest of the client.
"""

from __future__ import annotations

from urllib.parse import urlencode

from .transport import DaemonError, Transport, segment

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import Any


def open_attach(transport: Transport, sandbox_id: str, query: dict[str, Any] | None = None, *,
                exec_id: str | None = None) -> Any:
    """A connected ``websockets.sync`` client of /v1/sandboxes/{id}/attach (``query``: its
    parameters, e.g. a terminal's rows and cols), or of /v1/execs/{exec_id}/attach."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect, unix_connect

    path = (f"/v1/execs/{segment(exec_id)}/attach" if exec_id else
            f"/v1/sandboxes/{segment(sandbox_id)}/attach")
    if query:
        path += "?" + urlencode({k: str(v).lower() if isinstance(v, bool) else v
                                 for k, v in query.items()})
    headers = {"Authorization": f"Bearer {transport.token}"} if transport.token else {}
    try:
        if transport.scheme == "unix":
            return unix_connect(transport.address, f"ws://localhost{path}",
                                additional_headers=headers, max_size=None)
        scheme = "wss" if transport.scheme == "https" else "ws"
        return connect(f"{scheme}://{transport.address}:{transport.port}{path}",
                       additional_headers=headers, max_size=None)
    except (OSError, InvalidHandshake, InvalidStatus) as exc:
        raise DaemonError(f"cannot attach to sandbox {sandbox_id}: {exc}") from exc
