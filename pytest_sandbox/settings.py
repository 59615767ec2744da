"""Where a sandbox's spec comes from: defaults, ini, command line, the marker.

Later sources win: built-in defaults < ini options < command-line options <
the nearest ``@pytest.mark.sandbox(...)`` < ``pytest_sandbox_spec`` hooks.
The result is a dict of SandboxSpec keyword arguments (``fields``), so that
hooks can edit it before it is validated once, by SandboxSpec itself.
"""

from __future__ import annotations

import dataclasses
import os
import re

from sandbox import NetworkSpec, SandboxSpec, SpecError

#: Option name -> (help text, default). Each is both ``--sandbox-NAME`` and ini ``sandbox_NAME``.
LIMIT_OPTIONS = {
    "memory": ("memory limit per sandbox, e.g. 512m", None),
    "timeout": ("wall time limit per sandbox, e.g. 30s", None),
    "pids": ("process limit per sandbox", None),
    "cpus": ("CPU limit per sandbox, e.g. 0.5", None),
}
#: Marker keywords accepted besides the limits.
MARKER_KEYWORDS = ("image", "network", "env", "mounts", "hostname", "user", "output", "disk",
                   "seccomp", "userns", "allow_host_ports")

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def option(config, name: str):
    """A ``--sandbox-NAME`` value, else the ``sandbox_NAME`` ini value, else None."""
    value = config.getoption(f"sandbox_{name}", None)
    if value in (None, ""):
        value = config.getini(f"sandbox_{name}") or None
    return value


def marker_kwargs(node) -> dict:
    """Keyword arguments of the nearest ``sandbox`` marker (checked by name)."""
    marker = node.get_closest_marker("sandbox")
    if marker is None:
        return {}
    if marker.args:
        raise SpecError("sandbox marker", marker.args, "keyword arguments only, e.g. memory='128m'")
    unknown = set(marker.kwargs) - set(LIMIT_OPTIONS) - set(MARKER_KEYWORDS)
    if unknown:
        accepted = ", ".join(sorted({*LIMIT_OPTIONS, *MARKER_KEYWORDS}))
        raise SpecError("sandbox marker keyword", sorted(unknown)[0], accepted)
    return dict(marker.kwargs)


def base_fields(config, node, command: list[str], **overrides) -> dict:
    """The fields for one sandbox before the hooks see them."""
    fields: dict = {
        "image": option(config, "image") or "host",
        "command": list(command),
        "limits": {k: v for k in LIMIT_OPTIONS if (v := option(config, k)) is not None},
        "mounts": [],
        "env": {},
        "network": "none",
    }
    kwargs = {**marker_kwargs(node), **overrides} if node is not None else dict(overrides)
    for key, value in kwargs.items():
        if key in LIMIT_OPTIONS or key in ("output", "disk"):
            fields["limits"][key] = value
        elif key == "mounts":
            fields["mounts"].extend(value)
        elif key == "env":
            fields["env"].update(value)
        else:
            fields[key] = value
    if "allow_host_ports" in fields:  # a network's setting: into the NetworkSpec
        fields["network"] = with_host_ports(fields["network"], fields.pop("allow_host_ports"))
    return fields


def with_host_ports(network: str | NetworkSpec, ports: object) -> NetworkSpec:
    """``network`` (a mode or a NetworkSpec) with ``allow_host_ports`` set."""
    spec = NetworkSpec(network) if isinstance(network, str) else network
    return dataclasses.replace(spec, allow_host_ports=ports)  # type: ignore[arg-type]


def host_env() -> dict[str, str]:
    """This process's environment, as far as a SandboxSpec accepts it.

    Worked out again only when the environment changed (a test may change
    it): decoding and checking every variable for each sandbox cost far more
    than the comparison that finds it unchanged.
    """
    raw = getattr(os.environ, "_data", None)  # CPython's bytes dict behind os.environ
    if raw is None or raw != _HOST_ENV.get("raw"):
        env = {k: v for k, v in os.environ.items() if _ENV_KEY.match(k) and "\0" not in v}
        _HOST_ENV.update(raw=dict(raw) if raw is not None else None, env=env)
    return dict(_HOST_ENV["env"])


_HOST_ENV: dict = {}


def build_spec(config, item, fields: dict) -> SandboxSpec:
    """Let the hooks edit ``fields``, then validate them into a SandboxSpec."""
    config.hook.pytest_sandbox_spec(item=item, fields=fields)
    return SandboxSpec(**fields)
