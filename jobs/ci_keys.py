"""The job file's CI keys: network and egress, services, cache, parameters, secrets.

They sit beside the core keys of ``jobs.jobfile`` (which calls in here), in
the same style: one JobFileError per mistake, naming the file and the key::

    network = "none"             # none | bridge: the steps' network (default none; bridge when
                                 # the job has services); bridge is the job's own network
    egress = false               # true: the steps reach the outside (implies bridge)
    [params]                     # NAME = "default", set with `sandbox submit --param NAME=V`;
                                 # every step and service sees them as environment variables
    [cache]
    key = "pip-{hash:requirements.txt}"   # literal text, {hash:GLOB} (files of the workspace),
                                          # {env:NAME} (the job's env, params, matrix values)
    paths = ["/root/.cache/pip"] # relative (in /workspace) or under /root, /home, /tmp,
                                 # /var/cache, /var/tmp
    [services.redis]             # NAME: a host name the steps reach it by
    image = "host"               # default: the job's image
    command = "redis-server"     # a string (run with sh -c) or a list; default: the image's CMD
    env = { K = "v" }
    limits = { memory = "256m" } # as [limits]
    ready = "redis-cli ping"     # run inside the service until it succeeds, or:
    ready_port = 6379            # a TCP port that accepts connections
    ready_timeout = "30s"        # default 60s
    depends_on = ["db"]          # started, and ready, before this one
    egress = false
    secrets = ["TOKEN"]
    [[steps]]
    network = "bridge"           # as the job's, for this step
    egress = true
    secrets = ["TOKEN"]          # secrets given at submit time that this step gets as env vars
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from typing import Any, TypedDict

from sandbox import Limits, SpecError

from .errors import JobFileError
from .model import CacheSpec, JobSpec, ServiceSpec, Step
from .validator import ENV_KEY_RE, Validator, show

TOP_KEYS = ("network", "egress", "services", "cache", "params")
STEP_KEYS = ("network", "egress", "secrets")
SERVICE_KEYS = ("image", "command", "env", "limits", "ready", "ready_port", "ready_timeout",
                "depends_on", "egress", "secrets")
CACHE_KEYS = ("key", "paths")
LIMIT_KEYS = ("memory", "cpus", "pids", "output", "disk")
NETWORKS = ("none", "bridge")
#: Where absolute cache paths may lie: the areas of a step's sandbox that are its own to write.
CACHE_ROOTS = ("/workspace", "/root", "/home", "/tmp", "/var/cache", "/var/tmp")
DEFAULT_READY_TIMEOUT = 60.0
_HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_KEY_PART_RE = re.compile(r"\{([a-z]+):([^{}]*)\}|([A-Za-z0-9._-]+)|(.)", re.S)
_GLOB_RE = re.compile(r"^[A-Za-z0-9._*?\[\]/-]+$")


class JobFields(TypedDict):
    """The JobSpec fields the CI keys give."""

    network: str
    egress: bool
    services: tuple[ServiceSpec, ...]
    cache: CacheSpec | None
    params: dict[str, str]


class StepFields(TypedDict):
    """The Step fields the CI keys give (None: the job's)."""

    network: str | None
    egress: bool | None
    secrets: tuple[str, ...]


def job_fields(v: Validator, data: Mapping[str, Any], params: Mapping[str, str] | None,
               ) -> JobFields:
    """The JobSpec fields of the CI keys (``params`` holds `--param` values)."""
    services = _services(v, data.get("services"))
    egress = v.boolean(data, "egress")
    network = _network(v, data, "network", None)
    if network is None:
        network = "bridge" if services or egress else "none"
    elif network == "none" and egress:
        raise JobFileError(v.path, "egress", "true with network = \"none\": expected network = "
                           "\"bridge\" (or leave network out)")
    elif network == "none" and services:
        raise JobFileError(v.path, "network", "'none' in a job with [services]: expected "
                           "\"bridge\" (the steps reach the services on the job's network)")
    return JobFields(network=network, egress=egress, services=services,
                     cache=_cache(v, data.get("cache")), params=_params(v, data.get("params"), params))


def step_fields(v: Validator, step: Mapping[str, Any], where: str) -> StepFields:
    """The Step fields of the CI keys."""
    network = _network(v, step, "network", where)
    egress = v._get(step, "egress", lambda x: isinstance(x, bool), "true or false", where)
    if network == "none" and egress:
        raise JobFileError(v.path, f"{where}.egress", "true with network = \"none\": expected "
                           "network = \"bridge\" (or leave network out)")
    return StepFields(network=network, egress=egress, secrets=v.names(step, "secrets", where))


def check(v: Validator, spec: JobSpec, secrets: Collection[str] | None) -> None:
    """Checks across keys: names clashing with params, cache key templates, secrets.

    ``secrets``: the names given at submit time (None: not checked, as when
    a file is only validated).
    """
    for name in spec.params:
        if name in spec.matrix:
            raise JobFileError(v.path, f"matrix.{name}", "also a parameter: expected a name "
                               "not under [params]")
    if spec.cache is not None:
        for kind, arg in key_placeholders(spec.cache.key):
            if kind == "env" and arg not in spec.env:
                raise JobFileError(v.path, "cache.key", f"{{env:{arg}}}: the job sets no {arg} "
                                   "(expected a name of its env, params or matrix)")
    if spec.allow_host_ports and not needs_network(spec):
        raise JobFileError(v.path, "security.allow_host_ports", "given in a job without a network: "
                           "expected network = \"bridge\" (or a step or service on it)")
    if secrets is not None:
        _check_secrets(v, spec, secrets)


def _check_secrets(v: Validator, spec: JobSpec, given: Collection[str]) -> None:
    parts: list[tuple[str, Step | ServiceSpec]] = [(f"steps[{i}]", s) for i, s in enumerate(spec.steps)]
    parts += [(f"services.{s.name}", s) for s in spec.services]
    for where, part in parts:
        for name in part.secrets:
            if name not in given:
                raise JobFileError(v.path, f"{where}.secrets", f"{name!r} was not given: pass "
                                   f"--secret {name} (its value from the environment) or "
                                   f"--secret {name}=@FILE")
    listed = set(spec.secret_names)
    for name in given:
        if name not in listed:
            raise JobFileError(v.path, None, f"--secret {name}: no step or service lists it "
                               "(expected secrets = [\"" + name + "\"] in the steps that need it)")


def step_network(spec: JobSpec, step: Step) -> tuple[str, bool]:
    """(network, egress) of a step: its own keys, else the job's; egress implies bridge."""
    egress = spec.egress if step.egress is None else step.egress
    network = step.network or ("bridge" if step.egress else spec.network)
    return network, egress and network != "none"


def needs_network(spec: JobSpec) -> bool:
    """True when the job needs a network of its own (services, or a step on bridge)."""
    return bool(spec.services) or any(step_network(spec, s)[0] != "none" for s in spec.steps)


def _network(v: Validator, table: Mapping[str, Any], key: str, where: str | None) -> str | None:
    return v._get(table, key, lambda x: x in NETWORKS, "\"none\" or \"bridge\"", where)


def _params(v: Validator, table: object, given: Mapping[str, str] | None) -> dict[str, str]:
    declared = v.env(table, "params")
    for name, value in (given or {}).items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise JobFileError(v.path, "params", f"--param {name}={value}: no such parameter "
                               f"(declared: {known}; add {name} under [params] with a default)")
    return {**declared, **(given or {})}


def _cache(v: Validator, table: object) -> CacheSpec | None:
    if table is None:
        return None
    table = v.keys(table, CACHE_KEYS, "cache")
    key = str(v.string(table, "key", required=True, where="cache"))
    check_key_template(v, key)
    paths = table.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise JobFileError(v.path, "cache.paths", f"{show(paths)}: expected a non-empty list of "
                           "paths, like [\"/root/.cache/pip\"]")
    full = tuple(_cache_path(v, p) for p in paths)
    for i, one in enumerate(full):
        for other in full[:i]:
            if one == other or one.startswith(other + "/") or other.startswith(one + "/"):
                raise JobFileError(v.path, "cache.paths", f"{one!r} and {other!r} overlap: "
                                   "expected paths that are not inside each other")
    return CacheSpec(key=key, paths=full)


def _cache_path(v: Validator, path: str) -> str:
    """The cache path as an absolute container path, inside the sandbox's writable areas."""
    full = path if path.startswith("/") else f"/workspace/{path}"
    normal = os.path.normpath(full)
    areas = ", ".join(CACHE_ROOTS)
    if ".." in path.split("/") or not any(normal.startswith(r + "/") for r in CACHE_ROOTS):
        raise JobFileError(v.path, "cache.paths", f"{path!r} is outside the sandbox's writable "
                           f"areas: expected a path below {areas} (a relative path is in "
                           "/workspace), without '..'")
    return normal


def check_key_template(v: Validator, key: str) -> None:
    """A key is literal text ([A-Za-z0-9._-]) and {hash:GLOB} or {env:NAME} placeholders."""
    accepted = ("text of letters, digits, '.', '_', '-' and placeholders {hash:GLOB} (a glob "
                "inside the workspace) or {env:NAME}")
    if len(key) > 200:
        raise JobFileError(v.path, "cache.key", f"{len(key)} characters: expected at most 200")
    for match in _KEY_PART_RE.finditer(key):
        kind, arg, _text, bad = match.groups()
        if bad is not None:
            raise JobFileError(v.path, "cache.key", f"{key!r}: {bad!r} is not allowed: expected "
                               f"{accepted}")
        if kind == "hash" and not (_GLOB_RE.match(arg) and not arg.startswith("/")
                                   and ".." not in arg.split("/")):
            raise JobFileError(v.path, "cache.key", f"{{hash:{arg}}}: expected a relative glob "
                               "inside the workspace, like {hash:requirements*.txt}")
        if kind == "env" and not ENV_KEY_RE.match(arg):
            raise JobFileError(v.path, "cache.key", f"{{env:{arg}}}: expected a variable name")
        if kind is not None and kind not in ("hash", "env"):
            raise JobFileError(v.path, "cache.key", f"{{{kind}:...}}: expected {accepted}")


def key_placeholders(key: str) -> list[tuple[str, str]]:
    """The (kind, argument) of each placeholder of a valid key template, in order."""
    return [(m.group(1), m.group(2)) for m in _KEY_PART_RE.finditer(key) if m.group(1)]


def key_parts(key: str) -> list[tuple[str | None, str]]:
    """A valid key template as (kind or None for text, argument or text), in order."""
    return [(m.group(1), m.group(2)) if m.group(1) else (None, m.group(0))
            for m in _KEY_PART_RE.finditer(key)]


def _services(v: Validator, table: object) -> tuple[ServiceSpec, ...]:
    if table is None:
        return ()
    if not isinstance(table, dict) or not table:
        raise JobFileError(v.path, "services", "expected tables like [services.redis] with image "
                           "and command")
    services = {name: _service(v, str(name), body) for name, body in table.items()}
    return _in_dependency_order(v, services)


def _service(v: Validator, name: str, body: object) -> ServiceSpec:
    where = f"services.{name}"
    if not _HOSTNAME_RE.match(name) or name == "localhost":
        raise JobFileError(v.path, where, f"{name!r} is not a valid host name: expected lower-case "
                           "letters, digits and '-' (at most 63, not starting or ending with '-')")
    body = v.keys(body, SERVICE_KEYS, where)
    ready, port = v.string(body, "ready", where=where), v.port(body, "ready_port", where)
    if ready is not None and port is not None:
        raise JobFileError(v.path, f"{where}.ready_port", "given with ready: expected one "
                           "readiness check, ready or ready_port")
    depends = v._get(body, "depends_on", lambda x: isinstance(x, list)
                     and all(isinstance(n, str) for n in x), "a list of service names", where)
    return ServiceSpec(name=name, image=v.string(body, "image", where=where),
                       command=_command(v, body, where), env=v.env(body.get("env"), f"{where}.env"),
                       limits=limits(v, body.get("limits"), f"{where}.limits"),
                       ready=ready, ready_port=port,
                       ready_timeout=v.duration(body, "ready_timeout", DEFAULT_READY_TIMEOUT,
                                                where=where) or DEFAULT_READY_TIMEOUT,
                       depends_on=tuple(depends or ()), egress=v.boolean(body, "egress", where=where),
                       secrets=v.names(body, "secrets", where))


def _command(v: Validator, body: Mapping[str, Any], where: str) -> tuple[str, ...]:
    command = body.get("command")
    if command is None:
        return ()
    if isinstance(command, str) and command.strip():
        return ("sh", "-c", command)
    if isinstance(command, list) and command and all(isinstance(a, str) for a in command) and command[0]:
        return tuple(command)
    raise JobFileError(v.path, f"{where}.command", f"{show(command)}: expected a string (run with "
                       "sh -c) or a non-empty list of arguments")


def limits(v: Validator, table: object, where: str) -> dict[str, Any]:
    """A limits table (memory, cpus, pids, output, disk), normalised as ``sandbox.Limits`` does."""
    if table is None:
        return {}
    table = v.keys(table, LIMIT_KEYS, where)
    try:
        made = Limits(**table)
    except SpecError as exc:
        key = exc.field.split()[0]
        raise JobFileError(v.path, f"{where}.{key}", f"{show(exc.value)}: expected {exc.accepted}") from None
    return {k: getattr(made, k) for k in table}


def _in_dependency_order(v: Validator, services: dict[str, ServiceSpec]) -> tuple[ServiceSpec, ...]:
    """The services, each after those it depends on (file order otherwise); cycles refused."""
    for svc in services.values():
        for dep in svc.depends_on:
            if dep not in services or dep == svc.name:
                what = "the service itself" if dep == svc.name else "no service of this job"
                raise JobFileError(v.path, f"services.{svc.name}.depends_on", f"{dep!r} is {what}: "
                                   f"expected names of other services ({', '.join(services)})")
    ordered: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise JobFileError(v.path, f"services.{name}.depends_on", f"a cycle: {cycle}: "
                               "expected dependencies without cycles")
        visiting.append(name)
        for dep in services[name].depends_on:
            visit(dep)
        visiting.pop()
        ordered.append(name)

    for name in services:
        visit(name)
    return tuple(services[name] for name in ordered)
