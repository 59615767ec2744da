"""Thin wrappers for the syscalls Python lacks, and the kernel's plain interfaces.

Only this package talks to ctypes. A container's processes reach these
functions through one object, ``sandbox.process.kernel.Kernel``, for which a
recorder stands in in unit tests, so most logic is testable without root.
"""

from .cmdline import set_cmdline
from .mountapi import lowerdir_plus_supported, mount_overlay
from .syscalls import *  # noqa: F403
from .syscalls import __all__ as _SYSCALLS

__all__ = [*_SYSCALLS, "set_cmdline", "mount_overlay", "lowerdir_plus_supported"]  # noqa: PLE0604
