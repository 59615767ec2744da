"""How a supervised sandbox is kept: restart policy, removal, input logging, its terminal."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import SpecError
from ..planner import DEFAULT_TTY_SIZE, check_tty_size

_RESTART_RE = re.compile(r"^(no|always|on-failure)(?::(\d{1,6}))?$")


@dataclass(frozen=True)
class RestartPolicy:
    """``no``, ``always``, or ``on-failure[:N]`` (at most N restarts; unlimited without N).

    A sandbox stopped, killed or removed on request is never restarted, and
    neither is one whose command could not be started (a setup error).
    """

    name: str = "no"
    max_retries: int | None = None

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        match = _RESTART_RE.match(text or "")
        if not match or (match.group(2) and match.group(1) != "on-failure"):
            raise SpecError("restart policy", text, "no, always or on-failure[:N]")
        retries = match.group(2)
        return cls(match.group(1), int(retries) if retries else None)

    def wants_restart(self, exit_code: int, restarts: int) -> bool:
        """After a run that ended with ``exit_code``, the ``restarts``-th so far."""
        if self.name == "always":
            return True
        if self.name == "on-failure" and exit_code != 0:
            return self.max_retries is None or restarts < self.max_retries
        return False

    def __str__(self) -> str:
        return self.name if self.max_retries is None else f"{self.name}:{self.max_retries}"


@dataclass(frozen=True)
class SupervisorOptions:
    """What the supervisor does around the sandbox's runs.

    ``auto_remove``: removed once its command has ended for good (`--rm`);
    otherwise it is *kept*, stopped, with its writable layer, logs and name,
    until `sandbox rm`, and can start again. ``foreground``: its first client
    is the terminal that started it (`sandbox run -it`): if that client goes
    away without detaching, the command gets a hangup, as when a terminal
    closes. ``log_stdin``: what clients type is kept in the log. ``tty_size``:
    the terminal's size at the first start. ``owner``: who it is kept for, as
    a daemon names its callers (the token that made it); the engine only
    stores it, so a daemon started again still knows whose it is.
    """

    auto_remove: bool = False
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    foreground: bool = False
    log_stdin: bool = False
    tty_size: tuple[int, int] = DEFAULT_TTY_SIZE
    owner: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tty_size", check_tty_size(tuple(self.tty_size)))
        if self.auto_remove and self.restart.name != "no":
            raise SpecError("restart policy", str(self.restart),
                            "no with --rm (a sandbox removed at its end cannot start again)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupervisorOptions:
        restart = RestartPolicy(**data.get("restart", {}))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "restart"}
        return cls(restart=restart, **known)
