"""What an image says about how it runs: the OCI image config's ``config`` object.

The plan keeps one ImageConfig per stage as it walks the instructions (ENV,
WORKDIR, USER, CMD, ...); it is converted from and to the OCI JSON shape at
the store's boundary (``from_oci``/``to_oci``). The shell for RUN and the
shell forms of CMD and ENTRYPOINT is Docker's addition; it is kept while a
stage is planned and not stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_SHELL = ("/bin/sh", "-c")


@dataclass(frozen=True)
class ImageConfig:
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    user: str = ""
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    labels: tuple[tuple[str, str], ...] = ()
    exposed: tuple[str, ...] = ()
    shell: tuple[str, ...] = DEFAULT_SHELL

    @property
    def env_map(self) -> dict[str, str]:
        return dict(self.env)

    def with_env(self, pairs: Mapping[str, str]) -> "ImageConfig":
        env = dict(self.env)
        env.update(pairs)
        return replace(self, env=tuple(env.items()))

    def with_labels(self, pairs: Mapping[str, str]) -> "ImageConfig":
        labels = dict(self.labels)
        labels.update(pairs)
        return replace(self, labels=tuple(labels.items()))

    def with_exposed(self, ports: tuple[str, ...]) -> "ImageConfig":
        return replace(self, exposed=tuple(dict.fromkeys(self.exposed + ports)))

    def to_oci(self) -> dict[str, Any]:
        """The ``config`` object of an OCI image config (empty fields left out)."""
        out: dict[str, Any] = {}
        if self.env:
            out["Env"] = [f"{k}={v}" for k, v in self.env]
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.workdir:
            out["WorkingDir"] = self.workdir
        if self.user:
            out["User"] = self.user
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.exposed:
            out["ExposedPorts"] = {p: {} for p in self.exposed}
        return out

    @classmethod
    def from_oci(cls, data: Mapping[str, Any] | None) -> "ImageConfig":
        """From an OCI ``config`` object (None or {} for an image without one)."""
        data = data or {}
        env = tuple(tuple(item.split("=", 1)) for item in data.get("Env") or () if "=" in item)
        return cls(
            env=env,
            workdir=data.get("WorkingDir") or "",
            user=data.get("User") or "",
            cmd=tuple(data["Cmd"]) if data.get("Cmd") is not None else None,
            entrypoint=tuple(data["Entrypoint"]) if data.get("Entrypoint") is not None else None,
            labels=tuple((data.get("Labels") or {}).items()),
            exposed=tuple(data.get("ExposedPorts") or {}),
        )
