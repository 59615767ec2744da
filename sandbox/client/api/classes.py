"""/v1/classes: make, list, show, extend, end a class; reset a student's sandbox."""

from __future__ import annotations

from ..transport import Transport, segment

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    from typing import Any


class ClassesAPI:
    def __init__(self, transport: Transport) -> None:
        self.t = transport

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Every student's sandbox started; each student's token and URL (answered once)."""
        return self.t.request("POST", "/v1/classes", json_body=body, timeout=None)

    def list(self) -> list[dict[str, Any]]:
        return self.t.request("GET", "/v1/classes")

    def show(self, name: str) -> dict[str, Any]:
        return self.t.request("GET", f"/v1/classes/{segment(name)}")

    def extend(self, name: str, by: str) -> dict[str, Any]:
        return self.t.request("POST", f"/v1/classes/{segment(name)}/extend", query={"by": by})

    def remove(self, name: str) -> dict[str, Any]:
        return self.t.request("DELETE", f"/v1/classes/{segment(name)}", timeout=None)

    def reset(self, name: str, student: str) -> dict[str, Any]:
        return self.t.request("POST", f"/v1/classes/{segment(name)}/students/{segment(student)}/reset")
