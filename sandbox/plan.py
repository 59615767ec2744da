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
                                       "rlimits", "no_new_privs", "seccomp", "userns", "tty"),
                          defaults=((), True, None, None, None))):
    """How the command is started once the container exists.

    ``user`` is "uid[:gid]" or "name[:group]" as given (for messages); ``ids``
    is its (uid, gid, groups, home), resolved from the image's files by the
    parent; ``keep_caps`` is the bit mask of capabilities the command keeps;
    ``rlimits`` are (name, soft, hard). ``seccomp``: the SeccompFilter loaded
    last before exec, or None (unconfined); ``userns``: the UserNamespace the
    command runs in (entered before it becomes its user), or None. ``tty``: None,
    or the (rows, cols) of the pty the command gets as its controlling terminal
    (made in the container's devpts; its master goes to the parent on the console
    socket).
    """

    __slots__ = ()

    def describe(self) -> str:
        """The command's line of a plan's description."""
        line = f"exec {' '.join(self.argv)} as {self.user} in {self.workdir}"
        if self.seccomp is not None:
            line = f"{self.seccomp}\n{line}"
        if self.userns is not None:
            line = f"enter the user namespace ({self.userns})\n{line}"
        if self.tty:
            rows, cols = self.tty
            line = (f"open a pty in /dev/pts ({rows}x{cols}), send its master on the console "
                    f"socket\n{line}, the pty its controlling terminal")
        return line


def namespace_names(flags: int) -> str:
    """The namespaces in clone flags, by name: ``mnt uts ipc net cgroup``."""
    from .linux import (
        CLONE_NEWCGROUP,
        CLONE_NEWIPC,
        CLONE_NEWNET,
        CLONE_NEWNS,
        CLONE_NEWPID,
        CLONE_NEWUSER,
        CLONE_NEWUTS,
    )

    names = ((CLONE_NEWUSER, "user"), (CLONE_NEWNS, "mnt"), (CLONE_NEWUTS, "uts"),
             (CLONE_NEWIPC, "ipc"), (CLONE_NEWNET, "net"), (CLONE_NEWCGROUP, "cgroup"),
             (CLONE_NEWPID, "pid"))
    return " ".join(name for flag, name in names if flags & flag)


class Plan(namedtuple("Plan", ("sandbox_id", "cgroup_procs", "unshare_flags", "ops", "exec",
                               "hooks", "pre_ops", "hold", "trace", "host_steps", "enter"),
                  defaults=((), (), False, False, (), None))):
    """Everything the child needs, and nothing it must look up on the host.

    ``ops`` run after unshare, up to pivot_root; ``hooks`` after it
    (hostname, network, workdir); ``pre_ops`` in the host's namespaces,
    before unshare. With ``hold`` the init starts no command: once the
    container is ready it waits for the owner to fork a Python target into
    it (``process.launch_held``). With ``trace`` each step's time comes back
    with the "started" message. ``host_steps`` say what the owner does on
    the host before the container starts (its cgroup, its network lease),
    for ``describe``: the runtime does them. ``enter``: for a process
    started in a running container (``sandbox exec``), the (pid, start
    time, namespace ids) of that container's init, whose cgroup and
    namespaces (``unshare_flags``) it joins; such a plan has no steps.
    (Named tuples, not dataclasses: the zygote, which every container is a
    fork of, then needs neither dataclasses nor typing.)
    """

    __slots__ = ()

    @property
    def unshared_first(self) -> int:
        """The namespaces the first process unshares (a spare, ahead): ``unshare_flags``
        but those the user namespace step makes with the user namespace, which owns them
        (``process.userns``); the init ends up in all of ``unshare_flags``, which an exec
        joins."""
        made = 0
        for op in self.ops:
            if op.kind == "userns":
                made |= op.args[3]
        return self.unshare_flags & ~made

    def describe(self) -> str:
        """The plan as readable lines (for --dry-run and debugging)."""
        lines = [f"sandbox {self.sandbox_id}"]
        if self.enter is not None:
            return "\n".join([*lines, *self._describe_entry()])
        lines += [f"on the host: {step}" for step in self.host_steps]
        lines += [f"join cgroup {p}" for p in self.cgroup_procs]
        lines += [op.step for op in self.pre_ops]
        lines.append(f"unshare 0x{self.unshared_first:08x}")
        lines += [f"{op.step}" for op in self.ops + self.hooks]
        lines.append(self.exec.describe())
        return "\n".join(lines)

    def _describe_entry(self) -> list[str]:
        """The lines of an exec's plan: runc's order of joining, one setns by pidfd."""
        pid = self.enter[0]
        return [f"open a pidfd on the init (host pid {pid}), checked by its start time",
                "close every fd but stdio, the status pipe and the console socket",
                "become non-dumpable",
                *(f"join cgroup {p}" for p in self.cgroup_procs),
                f"setns(pidfd, {namespace_names(self.unshare_flags)} pid), then check each "
                "against the init's",
                *(["keep the pidfd: its user namespace is joined last, by setns(pidfd, user)"]
                  if self.exec.userns is not None else []),
                self.exec.describe() + ", a process of the pid namespace joined"]
