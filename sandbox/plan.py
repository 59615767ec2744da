"""A sandbox as a plan: the ordered steps the container's first process performs.

As bubblewrap does with its SetupOps, the spec is compiled in the parent into
plain data (a Plan), which the child walks in order. A plan can be printed
(`sandbox run --dry-run` prints the very plan a run would perform, the host's
steps included) and asserted on in unit tests without root; the executor
in ``process.steps`` that performs it stays small.
"""

from __future__ import annotations

from collections import namedtuple


class Op(namedtuple("Op", ("kind", "args", "step"))):
    """One setup step: what to do (``kind``), with what (``args``), and its name
    in error messages (``step``)."""

    __slots__ = ()

    def __str__(self) -> str:
        return self.step


class SeccompFilter(namedtuple("SeccompFilter", ("profile", "program", "flags"))):
    """A compiled seccomp filter: the profile it came from ("default" or a file),
    its BPF program (struct sock_filter[]) and the seccomp(2) flags to load it with."""

    __slots__ = ()

    def __str__(self) -> str:
        return (f"load the seccomp filter ({self.profile} profile, "
                f"{len(self.program) // 8} BPF instructions)")


class UserNamespace(namedtuple("UserNamespace", ("uid_base", "gid_base", "size"))):
    """A sandbox's user namespace: ids 0 to size-1 inside are ``uid_base``... and
    ``gid_base``... on the host (a range of /etc/subuid and /etc/subgid)."""

    __slots__ = ()

    def map_text(self, base: int) -> str:
        """/proc/PID/uid_map (or gid_map) content for the range at ``base``."""
        return f"0 {base} {self.size}\n"

    def __str__(self) -> str:
        return f"ids 0-{self.size - 1}, root in it the leased range's first host uid"


class ExecPlan(namedtuple("ExecPlan", ("argv", "env", "user", "workdir", "keep_caps", "ids",
                                       "rlimits", "no_new_privs", "seccomp", "userns"),
                          defaults=((), True, None, None))):
    """How the command is started once the container exists.

    ``user`` is "uid[:gid]" or "name[:group]" as given (for messages); ``ids``
    is its (uid, gid, groups, home), resolved from the image's files by the
    parent; ``keep_caps`` is the bit mask of capabilities the command keeps;
    ``rlimits`` are (name, soft, hard). ``seccomp``: the SeccompFilter loaded
    last before exec, or None (unconfined); ``userns``: the UserNamespace the
    command runs in (entered before it becomes its user), or None.
    """

    __slots__ = ()


class Plan(namedtuple("Plan", ("sandbox_id", "cgroup_procs", "unshare_flags", "ops", "exec",
                               "hooks", "pre_ops", "hold", "trace", "host_steps"),
                  defaults=((), (), False, False, ()))):
    """Everything the child needs, and nothing it must look up on the host.

    ``ops`` run after unshare, up to pivot_root; ``hooks`` after it
    (hostname, network, workdir); ``pre_ops`` in the host's namespaces,
    before unshare. With ``hold`` the init starts no command: once the
    container is ready it waits for the owner to fork a Python target into
    it (``process.launch_held``). With ``trace`` each step's time comes back
    with the "started" message. ``host_steps`` say what the owner does on
    the host before the container starts (its cgroup, its network lease),
    for ``describe``: the runtime does them. (Named tuples, not dataclasses:
    the zygote, which every container is a fork of, then needs neither
    dataclasses nor typing.)
    """

    __slots__ = ()

    def describe(self) -> str:
        """The plan as readable lines (for --dry-run and debugging)."""
        lines = [f"sandbox {self.sandbox_id}"]
        lines += [f"on the host: {step}" for step in self.host_steps]
        lines += [f"join cgroup {p}" for p in self.cgroup_procs]
        lines += [op.step for op in self.pre_ops]
        lines.append(f"unshare 0x{self.unshare_flags:08x}")
        lines += [f"{op.step}" for op in self.ops + self.hooks]
        if self.exec.userns is not None:
            lines.append(f"enter the user namespace ({self.exec.userns})")
        if self.exec.seccomp is not None:
            lines.append(str(self.exec.seccomp))
        lines.append(f"exec {' '.join(self.exec.argv)} as {self.exec.user} in {self.exec.workdir}")
        return "\n".join(lines)
