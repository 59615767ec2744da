"""/v1/images: list, inspect, remove; build, pull and push, their progress as it comes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..transport import Transport, iter_lines, segment
from .jobs import multipart


class ImagesAPI:
    def __init__(self, transport: Transport) -> None:
        self.t = transport

    def list(self) -> list[dict[str, Any]]:
        return self.t.request("GET", "/v1/images")

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/images/{segment(ref)}")

    def remove(self, ref: str, *, force: bool = False) -> dict[str, Any]:
        return self.t.request("DELETE", f"/v1/images/{segment(ref)}", query={"force": force})

    def pull(self, ref: str, *, insecure: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
        """The pull's lines: {"progress": text}..., then {"result": {id, tags}} or {"error": ...}."""
        return self._lines("/v1/images/pull", {"ref": ref, "insecure_registry": list(insecure)})

    def push(self, ref: str, *, insecure: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
        """The push's lines: {"progress": text}..., then {"result": {digest}} or {"error": ...}."""
        return self._lines("/v1/images/push", {"ref": ref, "insecure_registry": list(insecure)})

    def build(self, context: bytes, *, file: str | None = None, sandboxfile: bytes | None = None,
              shown_file: str | None = None, tags: Iterable[str] = (),
              build_args: Mapping[str, str] | None = None, target: str | None = None,
              no_cache: bool = False, network: str = "none", egress: bool = False,
              limits: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Build from ``context`` (a tar): the lines, as ``pull``'s; result: {id, tags}.

        ``file`` is the Sandboxfile's path in the context; ``sandboxfile`` its
        text, when it lives outside.
        """
        parts = [("context", "context.tar", "application/x-tar", context)]
        if sandboxfile is not None:
            parts.append(("sandboxfile", "Sandboxfile", "text/plain", sandboxfile))
        body, content_type = multipart(parts)
        query = {"file": file, "shown_file": shown_file, "tag": list(tags),
                 "build_arg": [f"{k}={v}" for k, v in (build_args or {}).items()],
                 "target": target, "no_cache": no_cache, "network": network, "egress": egress,
                 **(limits or {})}
        return self._lines("/v1/images/build", query, body=body,
                           headers={"Content-Type": content_type})

    def _lines(self, path: str, query: dict[str, Any], *, body: bytes | None = None,
               headers: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        response = self.t.stream("POST", path, query=query, body=body,
                                 headers={"Accept": "application/x-ndjson", **(headers or {})})
        try:
            for line in iter_lines(response):
                if line.strip():
                    yield json.loads(line)
        finally:
            response.close()
