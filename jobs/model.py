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
    """One command of a job, run with ``sh -ec`` in its own sandbox."""

    name: str
    run: str
    timeout: float | None = None
    continue_on_error: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data = asdict(self)
        data["steps"] = [dict(s) for s in data["steps"]]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobSpec":
        """The inverse of to_dict (input is trusted to come from to_dict)."""
        data = dict(data)
        data["steps"] = tuple(Step(**s) for s in data["steps"])
        results = dict(data.get("results") or {})
        data["results"] = ResultsSpec(**{k: tuple(v) if isinstance(v, list) else v
                                         for k, v in results.items()})
        if data.get("build") is not None:
            data["build"] = BuildSpec(**data["build"])
        return cls(**data)
