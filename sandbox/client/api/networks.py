"""/v1/networks: list, create, remove."""

from __future__ import annotations

from ..transport import Transport, segment

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import Any


class NetworksAPI:
    def __init__(self, transport: Transport) -> None:
        self.t = transport

    def list(self) -> list[dict[str, Any]]:
        return self.t.request("GET", "/v1/networks")

    def create(self, name: str, subnet: str | None = None, *,
               isolated: bool = False) -> dict[str, Any]:
        return self.t.request("POST", "/v1/networks",
                              json_body={"name": name, "subnet": subnet, "isolated": isolated})

    def remove(self, name: str) -> dict[str, Any]:
        return self.t.request("DELETE", f"/v1/networks/{segment(name)}")
