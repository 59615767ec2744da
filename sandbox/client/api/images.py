"""/v1/images: list, inspect, remove; build, pull and push, their progress as it comes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping

from ..transport import Transport, iter_lines, segment
from .jobs import multipart

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import Any


class ImagesAPI:
    def __init__(self, transport: Transport) -> None:
        self.t = transport

    def list(self) -> list[dict[str, Any]]:
        return self.t.request("GET", "/v1/images")

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/images/{segment(ref)}")

    def remove(self, ref: str, *, force: bool = False) -> dict[str, Any]:
        return self.t.request("DELETE", f"/v1/images/{segment(ref)}", query={"force": force})

    def tag(self, ref: str, target: str) -> dict[str, Any]:
        """Point ``target`` at the image ``ref`` names: the image's id and tags."""
        return self.t.request("POST", f"/v1/images/{segment(ref)}/tag", query={"target": target})

    def commit(self, sandbox: str, target: str, *, message: str = "") -> dict[str, Any]:
        """What the live ``sandbox`` changed, as the image ``target``: its id and tags."""
        return self.t.request("POST", "/v1/images/commit", timeout=None,
                              query={"sandbox": sandbox, "target": target, "message": message})

    def import_archive(self, archive: bytes, name: str, *, source: str,
                       replace: bool = False) -> dict[str, Any]:
        """A rootfs tarball as the one-layer image ``name`` (``source``: the archive as the
        user named it, for messages): its id and tags."""
        body, content_type = multipart([("archive", "rootfs.tar", "application/octet-stream",
                                         archive)])
        return self.t.request("POST", "/v1/images/import", body=body, timeout=None,
                              query={"name": name, "source": source, "replace": replace},
                              headers={"Content-Type": content_type})

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
              limits: Mapping[str, str] | None = None,
              dry_run: bool = False) -> Iterator[dict[str, Any]]:
        """Build from ``context`` (a tar): the lines, as ``pull``'s; result: {id, tags}.

        ``file`` is the Sandboxfile's path in the context; ``sandboxfile`` its
        text, when it lives outside. ``dry_run``: the plan's lines, nothing built.
        """
        parts = [("context", "context.tar", "application/x-tar", context)]
        if sandboxfile is not None:
            parts.append(("sandboxfile", "Sandboxfile", "text/plain", sandboxfile))
        body, content_type = multipart(parts)
        query = {"file": file, "shown_file": shown_file, "tag": list(tags),
                 "build_arg": [f"{k}={v}" for k, v in (build_args or {}).items()],
                 "target": target, "no_cache": no_cache, "network": network, "egress": egress,
                 "dry_run": dry_run or None, **(limits or {})}
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
