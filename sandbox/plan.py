"""A sandbox as a plan: the ordered steps the container's first process performs.

As bubblewrap does with its SetupOps, the spec is compiled in the parent into
plain data (a Plan), which the child walks in order. A plan can be printed
(`sandbox run --dry-run`) and asserted on in unit tests without root; the
executor in ``process.setup`` that performs it stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Op(NamedTuple):
    """One setup step: what to do, with what, and its name in error messages."""

    kind: str
    args: tuple[Any, ...]
    step: str

    def __str__(self) -> str:
        return self.step


@dataclass(frozen=True)
class ExecPlan:
    """How the command is started once the container exists."""

    argv: tuple[str, ...]
    env: dict[str, str]
    user: str  # "uid[:gid]" or "name[:group]", as given (for messages)
    workdir: str
    keep_caps: int  # bit mask of capabilities the command keeps
    #: (uid, gid, groups, home) of ``user``, resolved from the image's files by the parent
    ids: tuple[int, int, tuple[int, ...], str]
    rlimits: tuple[tuple[str, int, int], ...] = ()
    no_new_privs: bool = True


@dataclass(frozen=True)
class Plan:
    """Everything the child needs, and nothing it must look up on the host."""

    sandbox_id: str
    cgroup_procs: tuple[str, ...]
    unshare_flags: int
    ops: tuple[Op, ...]
    exec: ExecPlan
    hooks: tuple[Op, ...] = field(default=())  # steps after pivot_root (hostname, network, workdir)
    pre_ops: tuple[Op, ...] = field(default=())  # steps in the host namespaces, before unshare

    def describe(self) -> str:
        """The plan as readable lines (for --dry-run and debugging)."""
        lines = [f"sandbox {self.sandbox_id}"]
        lines += [f"join cgroup {p}" for p in self.cgroup_procs]
        lines += [op.step for op in self.pre_ops]
        lines.append(f"unshare 0x{self.unshare_flags:08x}")
        lines += [f"{op.step}" for op in self.ops + self.hooks]
        lines.append(f"exec {' '.join(self.exec.argv)} as {self.exec.user} in {self.exec.workdir}")
        return "\n".join(lines)
