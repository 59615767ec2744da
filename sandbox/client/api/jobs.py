"""/v1/jobs: submit (a job file and a packed workspace), list, show, cancel, artifacts, logs."""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator, Mapping, Sequence

from ..http1 import Response
from ..transport import Transport, iter_sse, segment

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import Any


class JobsAPI:
    def __init__(self, transport: Transport) -> None:
        self.t = transport

    def submit(self, filename: str, text: bytes, *, workspace: bytes | None = None,
               queue: str | None = None, params: Mapping[str, str] | None = None,
               secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Submit a job file (TOML, YAML or JSON, told by its name); jobs: [{id, name}], queued.

        ``params`` and ``secrets`` (their values already read) go as form fields of the
        body, never in the URL.
        """
        parts: builtins.list[Part] = [("job", os.path.basename(filename).replace('"', "_"),
                                       "application/octet-stream", text)]
        if workspace is not None:
            parts.append(("workspace", "workspace.tar.gz", "application/gzip", workspace))
        for field, pairs in (("param", params), ("secret", secrets)):
            parts += [(field, None, None, f"{k}={v}".encode()) for k, v in (pairs or {}).items()]
        body, content_type = multipart(parts)
        return self.t.request("POST", "/v1/jobs", body=body, query={"queue": queue},
                              headers={"Content-Type": content_type})

    def list(self, *, limit: int = 50, status: str | None = None, name: str | None = None,
             since: float | None = None) -> list[dict[str, Any]]:
        return self.t.request("GET", "/v1/jobs", query={"limit": limit, "status": status,
                                                          "name": name, "since": since})

    def show(self, job_id: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/jobs/{segment(job_id)}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.t.request("POST", f"/v1/jobs/{segment(job_id)}/cancel")

    # builtins.list: in this class, list is the method above
    def artifacts(self, job_id: str) -> builtins.list[dict[str, Any]]:
        return self.t.request("GET", f"/v1/jobs/{segment(job_id)}/artifacts")

    def artifact(self, job_id: str, path: str) -> bytes:
        data = self.t.request("GET", f"/v1/jobs/{segment(job_id)}/artifacts/{segment(path)}",
                              headers={"Accept": "application/octet-stream"})
        return data if isinstance(data, bytes) else json.dumps(data).encode()

    def junit(self, job_id: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/jobs/{segment(job_id)}/junit")

    def log(self, job_id: str, *, follow: bool = True, after: int = 0,
            service: str | None = None) -> Response:
        return self.t.stream("GET", f"/v1/jobs/{segment(job_id)}/log",
                             query={"follow": follow, "service": service},
                             headers={"Accept": "text/event-stream",
                                      **({"Last-Event-ID": str(after)} if after else {})})

    def events(self, job_id: str, *, follow: bool = True,
               service: str | None = None) -> Iterator[dict[str, Any]]:
        """The job's log events as dicts (kind, seq, time, step, stream, data, fields), to its
        eof; with ``service``, only that service's output."""
        response = self.log(job_id, follow=follow, service=service)
        try:
            for _event, _ident, data in iter_sse(response):
                yield json.loads(data)
        finally:
            response.close()


#: (field, filename, content type, bytes); a plain form field has no filename nor type.
Part = tuple[str, str | None, str | None, bytes]


def multipart(parts: Sequence[Part]) -> tuple[bytes, str]:
    """A multipart/form-data body of files and plain fields."""
    boundary = os.urandom(16).hex()
    out = []
    for name, filename, ctype, data in parts:
        if filename is None:
            out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        else:
            out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                       f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
