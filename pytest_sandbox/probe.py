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
    from sandbox import doctor

    if os.geteuid() != 0:
        return f"sandboxes need root (running as uid {os.geteuid()}); run pytest as root"
    checks = (doctor.check_namespaces, doctor.check_cgroups,
              lambda: doctor.check_filesystem("overlay", "modprobe overlay"))
    for check in checks:
        result = check()
        if not result.ok:
            fix = f"; fix: {result.fix}" if result.fix else ""
            return f"this host cannot make sandboxes: {result.name}: {result.detail}{fix}"
    return None
