"""The one seam between the engine and the kernel.

Only this package talks to ctypes. Everything above it calls these functions
through an object with the same names (the module itself in production, a
recorder in unit tests), so most logic is testable without root.
"""

from .syscalls import *  # noqa: F403
from .syscalls import __all__  # noqa: F401
