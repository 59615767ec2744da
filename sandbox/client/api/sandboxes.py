"""/v1/sandboxes: create, start, stop, restart, wait, kill, remove, list, inspect, logs,
stats, exec; /v1/execs."""

from __future__ import annotations

import json
from collections.abc import Iterator

from ..http1 import Response
from ..transport import Transport, iter_sse, segment

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import Any


class SandboxesAPI:
    def __init__(self, transport: Transport) -> None:
        self.t = transport

    def create(self, spec: dict[str, Any], *, start: bool = False, remove: bool = False,
               stdin: bool = False, **detached: Any) -> dict[str, Any]:
        """A new sandbox from a spec (SandboxSpec's fields as JSON): id, name, status, warnings.

        ``detached``: ``detach=True`` (a supervisor of its own, as `sandbox run -d`),
        ``restart``, ``foreground``, ``log_stdin``, ``rows``, ``cols``: the query of
        POST /v1/sandboxes.
        """
        return self.t.request("POST", "/v1/sandboxes", json_body=spec,
                              query={"start": start, "remove": remove, "stdin": stdin, **detached})

    def run(self, spec: dict[str, Any]) -> Response:
        """Make, start and follow a sandbox in one request (`sandbox run`), forgotten once it
        has ended: read the answer with ``frames``, a ``created`` frame first (id, name,
        status, warnings), the output, then ``ended`` (as ``wait`` answers). Close it."""
        return self.t.stream("POST", "/v1/sandboxes", query={"start": True, "remove": True,
                                                              "follow": True},
                             body=json.dumps(spec).encode(),
                             headers={"Content-Type": "application/json"})

    def list(self, *, all: bool = False) -> list[dict[str, Any]]:
        return self.t.request("GET", "/v1/sandboxes", query={"all": all})

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/sandboxes/{segment(ref)}")

    def start(self, ref: str) -> None:
        self.t.request("POST", f"/v1/sandboxes/{segment(ref)}/start")

    def wait(self, ref: str, *, remove: bool = False) -> dict[str, Any]:
        """Block until it has ended: exit_code, result (the engine's Result), message, summary."""
        return self.t.request("POST", f"/v1/sandboxes/{segment(ref)}/wait",
                              query={"remove": remove}, timeout=None)

    def kill(self, ref: str, signal: str = "SIGKILL") -> None:
        self.t.request("POST", f"/v1/sandboxes/{segment(ref)}/kill", query={"signal": signal})

    def stop(self, ref: str, timeout: float = 10) -> None:
        self.t.request("POST", f"/v1/sandboxes/{segment(ref)}/stop", query={"timeout": timeout},
                       timeout=None)

    def restart(self, ref: str, timeout: float = 10) -> None:
        self.t.request("POST", f"/v1/sandboxes/{segment(ref)}/restart",
                       query={"timeout": timeout}, timeout=None)

    def exec(self, ref: str, body: dict[str, Any]) -> str:
        """Make an exec in the running sandbox (``command``, ``env``, ``workdir``, ``user``,
        ``tty``, ``interactive``, ``rows``, ``cols``): its id; its attach starts it."""
        return self.t.request("POST", f"/v1/sandboxes/{segment(ref)}/exec", json_body=body)["id"]

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/execs/{segment(exec_id)}")

    def remove(self, ref: str, *, force: bool = False) -> dict[str, Any]:
        return self.t.request("DELETE", f"/v1/sandboxes/{segment(ref)}", query={"force": force})

    def stats(self, ref: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/sandboxes/{segment(ref)}/stats")

    def logs(self, ref: str, *, follow: bool = False, format: str = "multiplexed",
             stdout: bool = True, stderr: bool = True, stdin: bool = False,
             since: float | None = None) -> Response:
        """The log as a stream: ``multiplexed`` frames (see ``frames``), ``text``, or ``sse``
        (see ``records``); ``since``: only what came at or after it (epoch seconds)."""
        return self.t.stream("GET", f"/v1/sandboxes/{segment(ref)}/logs",
                             query={"follow": follow, "format": format, "stdout": stdout,
                                    "stderr": stderr, "stdin": stdin, "since": since})

    def records(self, ref: str, *, follow: bool = False, stdin: bool = False,
                since: float | None = None) -> Iterator[dict[str, Any]]:
        """The log's records as the daemon keeps them: dicts of ``stream``, ``time`` (epoch
        seconds) and ``data`` (text) or ``b64`` (other bytes), as a log file's lines."""
        response = self.logs(ref, follow=follow, format="sse", stdin=stdin, since=since)
        try:
            for _event, _ident, data in iter_sse(response):
                yield json.loads(data)
        finally:
            response.close()


#: The stream types of a multiplexed frame, as Docker numbers them; and the two a followed
#: run (``run``) adds, each a JSON object: what was made, and how it ended.
STREAM_TYPES = {0: "stdin", 1: "stdout", 2: "stderr", 3: "created", 4: "ended"}


def frames(response: Response):
    """(stream, bytes) for each frame of a multiplexed log: an 8-byte header, then the data.

    The header is Docker's: the stream type (0 stdin, 1 stdout, 2 stderr), three zero
    bytes, and the length of the data as a big-endian 32-bit number.
    """
    while True:
        header = response.read(8)
        if len(header) < 8:
            return
        size = int.from_bytes(header[4:8], "big")
        data = response.read(size)
        yield STREAM_TYPES.get(header[0], "stdout"), data
