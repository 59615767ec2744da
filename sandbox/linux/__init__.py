"""The one seam between the engine and the kernel.

Only this package talks to ctypes. Everything above it calls these functions
through an object with the same names (the module itself in production, a
recorder in unit tests), so most logic is testable without root.
"""

from .cmdline import set_cmdline
from .mountapi import lowerdir_plus_supported, mount_overlay  # noqa: F401
from .syscalls import *  # noqa: F401,F403
from .syscalls import __all__ as _SYSCALLS

__all__ = [*_SYSCALLS, "set_cmdline", "mount_overlay", "lowerdir_plus_supported"]
