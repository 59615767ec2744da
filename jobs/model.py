"""What a job is: frozen dataclasses made from a job file, and their JSON form.

A JobSpec is data, validated once by ``jobs.jobfile`` and never changed. It
crosses the network as plain JSON (``to_dict``/``from_dict``), never pickle:
whoever can write to the queue must not be able to run code on a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One command of a job, run with ``sh -ec`` in its own sandbox.

    ``network`` and ``egress``: None takes the job's. ``secrets``: the names
    of the secrets given at submit time that this step gets in its
    environment (their values are never part of the spec).
    """

    name: str
    run: str
    timeout: float | None = None
    continue_on_error: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    network: str | None = None
    egress: bool | None = None
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    """A long-lived sandbox the steps talk to (``[services.NAME]``), reached by ``name``.

    ``command`` is an argument list (a job file's string becomes ``sh -c``
    STRING; empty: the image's CMD). Readiness: ``ready`` is a shell command
    run inside the service until it succeeds, ``ready_port`` a TCP port that
    accepts connections; neither: ready once started. ``image`` None takes
    the job's; ``depends_on`` names services started (and ready) before it.
    """

    name: str
    image: str | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, Any] = field(default_factory=dict)
    ready: str | None = None
    ready_port: int | None = None
    ready_timeout: float = 60.0
    depends_on: tuple[str, ...] = ()
    egress: bool = False
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class CacheSpec:
    """Directories kept between jobs (``[cache]``) under a key rendered before the steps.

    ``key`` is a template (``pip-{hash:requirements.txt}``, see jobs.cache);
    ``paths`` are container paths (absolute, or relative to /workspace).
    """

    key: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class ResultsSpec:
    """Files read from the workspace after the steps: JUnit reports and artifacts (globs)."""

    junit: tuple[str, ...] = ()
    allow_empty: bool = False
    artifacts: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildSpec:
    """The image a job builds before its steps (``build`` in the job file).

    ``file`` is an absolute host path; when it lies in the job's workspace the
    build reads it (and its context, the file's directory) from the job's copy
    of the workspace, so a queued job builds the same on any worker. ``tag``
    names the image (the job file's ``image``), else it stays untagged.
    """

    file: str
    args: Mapping[str, str] = field(default_factory=dict)
    network: str = "none"
    egress: bool = False
    target: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """A whole job: where it runs, with which limits, which steps, what it reports.

    With ``build``, the steps run in the image built first (a step's own
    ``image`` still wins); ``image`` is then only the name given to it.

    ``workspace`` is an absolute host path (copied, never mounted as is) or
    None for an empty workspace. ``limits`` holds keyword arguments of
    ``sandbox.Limits``, already normalised. ``matrix`` holds the values of
    this instance when the job file had a matrix (they are also in ``env``).
    """

    name: str
    steps: tuple[Step, ...]
    image: str = "host"
    workspace: str | None = None
    timeout: float | None = 600.0
    limits: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    results: ResultsSpec = field(default_factory=ResultsSpec)
    matrix: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    build: BuildSpec | None = None
    # -- the CI keys (jobs.ci_keys): network, services, cache, parameters --
    network: str = "none"
    egress: bool = False
    services: tuple[ServiceSpec, ...] = ()
    cache: CacheSpec | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    #: Every step's seccomp profile ("default", "unconfined", or "nested": a remote batch of
    #: the pytest plugin, whose tests stack the default) and user namespace mode
    #: ("host" or "auto"; None: the worker's default, $SANDBOX_USERNS or host).
    seccomp: str = "default"
    userns: str | None = None
    #: Ports of the host the steps and services on the job's network may connect to.
    allow_host_ports: tuple[int, ...] = ()
    #: Every step's sandbox can make sandboxes nested in it: a cgroup subtree of its own
    #: (``SandboxSpec.delegate_cgroup``) and a view of its root (``root_view``), for a remote
    #: batch of the pytest plugin, which runs each test in one.
    nested: bool = False

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Every secret a step or service lists, each once, in order."""
        parts: tuple[Step | ServiceSpec, ...] = (*self.steps, *self.services)
        names = [n for part in parts for n in part.secrets]
        return tuple(dict.fromkeys(names))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data = asdict(self)
        data["steps"] = [dict(s) for s in data["steps"]]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobSpec":
        """The inverse of to_dict (input is trusted to come from to_dict)."""
        data = dict(data)
        data["steps"] = tuple(Step(**_tuples(s)) for s in data["steps"])
        results = dict(data.get("results") or {})
        data["results"] = ResultsSpec(**_tuples(results))
        data["services"] = tuple(ServiceSpec(**_tuples(s)) for s in data.get("services") or ())
        data["allow_host_ports"] = tuple(data.get("allow_host_ports") or ())
        if data.get("cache") is not None:
            data["cache"] = CacheSpec(**_tuples(data["cache"]))
        if data.get("build") is not None:
            data["build"] = BuildSpec(**data["build"])
        return cls(**data)


def _tuples(data: Mapping[str, Any]) -> dict[str, Any]:
    """JSON's lists back to the tuples the dataclasses hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
