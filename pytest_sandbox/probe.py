"""Can this host run sandboxes? Asked once per session, answered with a reason.

A marked test on a host that cannot isolate it is skipped with this reason
(or failed with ``--sandbox-strict``): it never runs unisolated.
"""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def why_not() -> str | None:
    """None when sandboxes can be made here, else what is missing and the fix."""
    import sandbox

    if os.geteuid() != 0:
        return f"sandboxes need root (running as uid {os.geteuid()}); run pytest as root"
    return sandbox.why_unavailable()
