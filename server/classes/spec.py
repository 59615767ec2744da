"""What a class is asked to be: its name, its students, their image and limits, its lifetime.

A ClassSpec is data, validated once when it is made (from `sandbox class
create`'s flags or the API's JSON): a bad value raises SpecError naming the
field and what is accepted, as `sandbox run` does for its flags. The
sandbox of each student is made from it by ``student_spec``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from sandbox import Limits, Mount, NetworkSpec, SandboxSpec, SpecError, parse_duration

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
MAX_STUDENTS = 200
DEFAULT_TTL = 2 * 3600.0
MAX_TTL = 7 * 24 * 3600.0
NETWORKS = ("none", "class")
#: The shell each student gets, and where a persistent home (``home_volume``) is mounted.
SHELL = ("/bin/sh", "-i")
HOME = "/root"
#: Whether the engine gives a sandbox a user namespace of its own (``SandboxSpec.userns``,
#: branch `security`). The switch for class sandboxes is ``ClassSpec.userns``: on by default
#: once the engine has them; until then a class that asks for one is refused (never run
#: without it).
USERNS_AVAILABLE = "userns" in {f.name for f in fields(SandboxSpec)}
#: Limits a student's sandbox gets unless the class says otherwise (a shell, not a build).
DEFAULT_LIMITS: dict[str, Any] = {"memory": "256m", "cpus": 0.25, "disk": "512m", "pids": 256}


@dataclass(frozen=True)
class ClassSpec:
    """A class: ``students`` sandboxes of ``image`` for ``ttl`` seconds, each student's own.

    ``network``: ``none`` (each sandbox alone with its loopback) or ``class``
    (one isolated network for the class: each student reaches its gateway,
    never another student).
    ``home_volume``: each student's home is a host directory kept across a
    reset (removed with the class). ``keep_recordings``: the session
    recordings stay on disk after the class ends. ``userns``: the students'
    sandboxes get a user namespace of their own (refused until the engine
    has them: see ``USERNS_AVAILABLE``).
    """

    name: str
    students: int
    image: str
    ttl: float = DEFAULT_TTL
    limits: Limits = field(default_factory=lambda: Limits(**DEFAULT_LIMITS))
    network: str = "none"
    home_volume: bool = False
    keep_recordings: bool = False
    userns: bool = USERNS_AVAILABLE
    shell: tuple[str, ...] = SHELL

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise SpecError("class name", self.name, "lower-case letters, digits and '-', "
                            "at most 31, starting with a letter or digit")
        if isinstance(self.students, bool) or not isinstance(self.students, int) or not (
                0 < self.students <= MAX_STUDENTS):
            raise SpecError("students", self.students, f"a number from 1 to {MAX_STUDENTS}")
        if not isinstance(self.image, str) or not self.image:
            raise SpecError("image", self.image, "an image name like busybox")
        ttl = parse_duration("ttl", self.ttl)
        if ttl is None or ttl > MAX_TTL:
            raise SpecError("ttl", self.ttl, "a duration like 2h or 90m, at most 7 days")
        object.__setattr__(self, "ttl", ttl)
        if self.network not in NETWORKS:
            raise SpecError("network", self.network, "none or class")
        if not self.shell or not all(isinstance(a, str) and a for a in self.shell):
            raise SpecError("shell", self.shell, "a command as a list of words, e.g. /bin/sh -i")

    @classmethod
    def from_request(cls, body: dict[str, Any]) -> "ClassSpec":
        """From the API's JSON (the CLI's flags by the same names); limits left out keep
        DEFAULT_LIMITS, null is unlimited."""
        given: dict[str, Any] = {k: body[k] for k in ("memory", "cpus", "disk", "pids") if k in body}
        limits = Limits(**(DEFAULT_LIMITS | given))
        shell = body.get("shell")
        return cls(name=body.get("name"), students=body.get("students"), image=body.get("image"),  # type: ignore[arg-type]
                   ttl=body.get("ttl") or DEFAULT_TTL, limits=limits,
                   network=body.get("network") or "none",
                   home_volume=bool(body.get("home_volume")),
                   keep_recordings=bool(body.get("keep_recordings")),
                   userns=USERNS_AVAILABLE if body.get("userns") is None else bool(body["userns"]),
                   shell=tuple(shell) if shell else SHELL)

    def student_names(self) -> list[str]:
        """``student-01`` .. ``student-30`` (as wide as the count needs)."""
        width = max(2, len(str(self.students)))
        return [f"student-{i:0{width}d}" for i in range(1, self.students + 1)]

    def network_name(self) -> str:
        return f"class-{self.name}"

    def to_dict(self) -> dict[str, Any]:
        limits = self.limits
        return {"name": self.name, "students": self.students, "image": self.image,
                "ttl": self.ttl, "memory": limits.memory, "cpus": limits.cpus,
                "disk": limits.disk, "pids": limits.pids, "network": self.network,
                "home_volume": self.home_volume, "keep_recordings": self.keep_recordings,
                "userns": self.userns, "shell": list(self.shell)}


def student_spec(spec: ClassSpec, student: str, home: str | None) -> SandboxSpec:
    """The sandbox of one student: the class's image, limits and network, the shell, and
    the student's home mounted read-write when the class keeps homes."""
    network = (NetworkSpec("none") if spec.network == "none"
               else NetworkSpec(spec.network_name(), alias=student))
    mounts = (Mount(home, HOME, read_only=False),) if home else ()
    sandbox = SandboxSpec(image=spec.image, command=spec.shell, name=f"{spec.name}-{student}",
                          hostname=student, limits=spec.limits, network=network, mounts=mounts,
                          env={"HOME": HOME, "TERM": "xterm-256color", "PS1": r"\u@\h:\w\$ "})
    return sandbox.with_changes(userns="auto") if spec.userns and USERNS_AVAILABLE else sandbox
