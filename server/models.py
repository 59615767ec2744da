"""Request and response shapes of the API, named by role (Create, Summary, Detail, ...).

Request bodies are loose on purpose: pydantic checks only the JSON types,
and the values go to the engine's own constructors (SandboxSpec, Limits,
Mount, NetworkSpec), so a bad value is refused with exactly the SpecError
`sandbox run` prints for the same flag: 400, its one line and its field.
Unknown keys are refused (``upper_dir``, a host path, is not part of it).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandbox import (
    Limits,
    Mount,
    NetworkSpec,
    Publish,
    SandboxSpec,
    SpecError,
    capabilities_from,
    check_name,
)

Size = int | float | str | None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MountBody(Strict):
    source: str = Field(description="an absolute path on the daemon's host")
    target: str = Field(description="an absolute path in the sandbox")
    read_only: bool = True


class LimitsBody(Strict):
    """As `sandbox run`'s limit flags; a key left out keeps the default, null is unlimited."""

    memory: Size = None
    memory_swap: Size = None
    cpus: float | str | None = None
    cpuset: str | None = None
    pids: int | str | None = None
    timeout: Size = None
    idle_timeout: Size = Field(default=None, description="end it after this long without "
                               "output or input (an interactive session)")
    output: Size = None
    disk: Size = None
    ulimits: list[str] | None = Field(default=None, description="NAME=SOFT[:HARD]")


class NetworkBody(Strict):
    mode: str = "none"
    alias: str | None = None
    egress: bool = False
    publish: list[str] = Field(default_factory=list, description="HOSTPORT:PORT")
    allow_host_ports: list[int] = Field(default_factory=list,
                                        description="ports of the host the sandbox may connect to "
                                        "(every other connection to the host is dropped): admin only")


class SandboxCreate(Strict):
    """A SandboxSpec as JSON (see sandbox.spec), with Docker's cap_add/cap_drop."""

    image: str
    command: list[str] = Field(default_factory=list, description="empty: the image's CMD")
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    hostname: str = "sandbox"
    name: str | None = None
    mounts: list[str | MountBody] = Field(default_factory=list,
                                          description="SRC:DST[:ro|rw] or {source, target, read_only}")
    limits: LimitsBody | None = None
    network: str | NetworkBody | None = None
    capabilities: list[str] | None = None
    cap_add: list[str] = Field(default_factory=list)
    cap_drop: list[str] = Field(default_factory=list)
    stdin: str | None = Field(default=None, description="text given to the command's stdin")
    seccomp: str = Field(default="default", description="default (Docker's profile), unconfined "
                         "(admin only) or the absolute path of a profile on the daemon's host "
                         "(needs mount-host)")
    userns: str | None = Field(default=None, description="auto (a user namespace of its own) or "
                               "host; null: the daemon's default ($SANDBOX_USERNS, else host)")
    tty: bool = Field(default=False, description="run the command on a pty made inside the "
                      "sandbox (`sandbox run -t`): the attach WebSocket carries it, keystrokes "
                      "in and the screen out, and POST .../resize sets its size")

    def to_spec(self) -> SandboxSpec:
        """The engine's SandboxSpec, checked in the order `sandbox run` checks its flags."""
        check_name(self.name)
        caps = self.capabilities if self.capabilities is not None else capabilities_from(
            self.cap_add, self.cap_drop)
        given = self.limits.model_dump(exclude_unset=True) if self.limits else {}
        if "ulimits" in given and given["ulimits"] is None:
            given["ulimits"] = ()  # null: no rlimit lowered
        limits = Limits(**given)
        return SandboxSpec(
            image=self.image, command=tuple(self.command), env=self.env, workdir=self.workdir,
            user=self.user, hostname=self.hostname, name=self.name,
            mounts=tuple(_mount(m) for m in self.mounts), limits=limits,
            network=self._network(), capabilities=tuple(caps) if caps is not None else None,
            stdin=self.stdin.encode() if self.stdin is not None else None, seccomp=self.seccomp,
            userns=self.userns, tty=self.tty, interactive=self.tty)

    def _network(self) -> NetworkSpec:
        body = self.network
        if body is None or isinstance(body, str):
            return NetworkSpec(body or "none", alias=self.name)
        return NetworkSpec(body.mode, alias=body.alias or self.name, egress=body.egress,
                           publish=tuple(Publish.parse(p) for p in body.publish),
                           allow_host_ports=tuple(body.allow_host_ports))


def _mount(value: str | MountBody) -> Mount:
    if isinstance(value, MountBody):
        return Mount(value.source, value.target, read_only=value.read_only)
    if not os.path.isabs(value.split(":", 1)[0]):
        raise SpecError("volume", value, "SRC:DST, SRC:DST:ro or SRC:DST:rw, with an absolute "
                        "host path SRC and a container path DST")
    return Mount.parse(value)


class SandboxCreated(BaseModel):
    id: str
    name: str | None
    status: str
    warnings: list[str] = Field(default_factory=list)


class SandboxSummary(BaseModel):
    """A row of `sandbox ps`."""

    id: str
    name: str | None
    image: str
    status: str
    created: float
    command: list[str]
    owner_pid: int | None = None
    owner: str | None = None
    exit_code: int | None = Field(default=None, description="a stopped one's last exit status")
    finished: float | None = Field(default=None, description="when a stopped one stopped")


class ExecCreate(Strict):
    """A process to start in a running sandbox (`sandbox exec`)."""

    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict, description="added to the sandbox's")
    workdir: str | None = None
    user: str | None = Field(default=None, description="UID[:GID] or NAME[:GROUP] of the image")
    tty: bool = Field(default=False, description="on a pty made inside the sandbox")
    interactive: bool = Field(default=False, description="its stdin stays open: the attach "
                              "WebSocket's binary messages (an empty one closes it)")
    rows: int | None = Field(default=None, ge=1, le=1000)
    cols: int | None = Field(default=None, ge=1, le=1000)


class ExecCreated(BaseModel):
    id: str


class ExecDetail(BaseModel):
    """An exec's state: ``created`` (not started: its attach starts it), ``running``, ``exited``."""

    id: str
    sandbox: str
    command: list[str]
    tty: bool
    interactive: bool
    status: str
    running: bool
    exit_code: int | None = None
    message: str | None = None
    pid: int | None = None
    owner: str | None = None
    created: float


class SandboxDetail(SandboxSummary):
    spec: dict[str, Any] | None = None
    terminal: str | None = Field(default=None, description="pty or pipe: it takes input "
                                 "(its terminal WebSocket types into it); null: it does not")
    result: dict[str, Any] | None = None
    error: str | None = None
    detached: dict[str, Any] | None = Field(default=None, description="a detached sandbox's "
                                            "supervisor state, restart policy and restarts")
    execs: list[ExecDetail] = Field(default_factory=list, description="the execs made in it")


class WaitResponse(BaseModel):
    """How a sandbox ended: its exit status, the engine's Result, and the lines `sandbox run` prints."""

    id: str
    exit_code: int | None = Field(description="null: a detached sandbox that never ran")
    result: dict[str, Any] | None
    message: str | None = Field(description="the limit that ended or cut the run, if any")
    summary: str | None = Field(description="usage, as `sandbox run --stats` prints it")
    error: str | None = None


class Removed(BaseModel):
    id: str


class ImageRow(BaseModel):
    """A row of `sandbox images` (size in bytes; built-in images have no id)."""

    name: str
    tag: str | None
    id: str | None
    size: int | None
    created: float | None
    note: str | None


class ImageMade(BaseModel):
    """An image a tag, an import or a commit made: its id and its names."""

    id: str
    tags: list[str]


class ImageRemoved(BaseModel):
    ref: str
    id: str
    freed: int


class NetworkCreate(Strict):
    name: str
    subnet: str | None = None
    #: Members reach the gateway (and what the firewall lets through it), never each other.
    isolated: bool = False


class NetworkRow(BaseModel):
    name: str
    bridge: str
    subnet: str
    isolated: bool = False
    members: int = 0


class NetworkRemoved(BaseModel):
    name: str
    bridge: str
    default: bool


class JobRef(BaseModel):
    id: str
    name: str


class JobsSubmitted(BaseModel):
    jobs: list[JobRef]
    queued: bool = Field(description="true: on the Redis queue for workers; false: run by the daemon")


class JobCancelled(BaseModel):
    id: str
    before: str = Field(description="the status it had: queued, running, or a final one")


class ArtifactInfo(BaseModel):
    path: str
    size: int
    sha256: str
    stored: bool


class ErrorBody(BaseModel):
    """Every error: one line, as the CLI prints it, and the CLI's exit status."""

    message: str
    field: str | None = None
    exit_status: int = 125
    kind: str | None = None


class Health(BaseModel):
    status: str


class Version(BaseModel):
    version: str
    api: str
    python: str


#: The error answers every route may give, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in (
        (400, "a bad value, with the field; or a command that could not start (exit_status)"),
        (401, "no valid token (TCP)"), (403, "the token lacks a scope"),
        (404, "no such sandbox, image, network or job (or not the caller's)"),
        (409, "the wrong state: running, not running, in use"),
        (413, "an upload over its cap"), (503, "this host cannot run sandboxes"))}
