"""/v1/health, /v1/version, /v1/info."""

from __future__ import annotations

from ..transport import Transport

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import Any


class SystemAPI:
    def __init__(self, transport: Transport) -> None:
        self.t = transport

    def health(self) -> dict[str, Any]:
        return self.t.request("GET", "/v1/health")

    def version(self) -> dict[str, Any]:
        return self.t.request("GET", "/v1/version")

    def info(self) -> dict[str, Any]:
        return self.t.request("GET", "/v1/info")
