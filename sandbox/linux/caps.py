"""Capability names and numbers (linux/capability.h)."""

from __future__ import annotations

import functools

CAPABILITIES: dict[str, int] = {
    name: number
    for number, name in enumerate(
        ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
         "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
         "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
         "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
         "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
         "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"]
    )
}


@functools.cache
def last_cap() -> int:
    """The highest capability number this kernel knows (read once per process tree:
    forked children, which each need it, inherit the value)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPABILITIES.values())


def mask(names: tuple[str, ...] | list[str]) -> int:
    """Bit mask of the named capabilities."""
    bits = 0
    for name in names:
        bits |= 1 << CAPABILITIES[name]
    return bits
