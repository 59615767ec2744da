"""/v1/images: list, inspect, remove (build, pull and push join them as they land)."""

from __future__ import annotations

from typing import Any

from ..transport import Transport, segment


class ImagesAPI:
    def __init__(self, transport: Transport) -> None:
        self.t = transport

    def list(self) -> list[dict[str, Any]]:
        return self.t.request("GET", "/v1/images")

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/images/{segment(ref)}")

    def remove(self, ref: str, *, force: bool = False) -> dict[str, Any]:
        return self.t.request("DELETE", f"/v1/images/{segment(ref)}", query={"force": force})
