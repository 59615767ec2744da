"""Reading job files (TOML, YAML or JSON): one clear error per mistake.

The schema (see README.md, "The job file"); keys not listed are errors::

    name = "unit tests"          # required
    image = "host"               # any image the engine knows (default host); with build,
                                 # the name the built image gets
    build = "Sandboxfile"        # optional: build this Sandboxfile (in the file's directory
                                 # tree, through no link; its directory is the context) before
                                 # the steps, which then run in it; cached like `sandbox
                                 # build`; in the workspace, so queued jobs have it. Or a table:
                                 # build = { file = "Sandboxfile", args = { V = "1" },
                                 #           network = "bridge", egress = true, target = "test" }
    workspace = "."              # directory copied into /workspace, relative to the file,
                                 # inside the file's directory tree, reached through no link
    timeout = "10m"              # whole job, wall clock (default 10m)
    [limits]                     # memory, cpus, pids, output, disk (as `sandbox run`)
    [env]                        # NAME = "value", for every step
    [matrix]                     # NAME = ["a", "b"]: one job per combination, values in env
    [security]                   # as `sandbox run --security-opt` and `--userns`
    seccomp = "default"          # Docker's default profile, or "unconfined" (no filter)
    userns = "host"              # or "auto": a user namespace of its own for every step
    allow_host_ports = [5432]    # ports of the worker's host the job's steps and services
                                 # on its network may connect to (as --allow-host-port)
    [[steps]]                    # at least one
    name = "test"                # required, unique
    run = "pytest -q"            # required, run with `sh -ec` in /workspace
    timeout = "5m"               # optional, capped by what is left of the job's
    continue_on_error = false    # a failure here does not stop or fail the job
    env = { K = "v" }            # on top of the job's env
    image = "busybox"            # optional, overrides the job's image
    [results]
    junit = ["report.xml"]       # globs; reports are merged; missing/empty fails the job
    allow_empty = false          # true: a missing or empty report is fine
    artifacts = ["logs/*.txt"]   # globs; stored with the result

The CI keys (network, egress, services, cache, params; a step's network,
egress and secrets) are described in ``jobs.ci_keys``.
"""

from __future__ import annotations

import itertools
import json
import os
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from sandbox import USERNS_MODES

from . import ci_keys
from .errors import JobFileError
from .model import BuildSpec, JobSpec, ResultsSpec, Step
from .validator import ENV_KEY_RE as _ENV_KEY_RE
from .validator import Validator as _Validator
from .validator import show as _show

TOP_KEYS = ("name", "image", "build", "workspace", "timeout", "limits", "env", "matrix", "security",
            "steps", "results")
BUILD_KEYS = ("file", "args", "network", "egress", "target")
SECURITY_KEYS = ("seccomp", "userns", "allow_host_ports")
#: A job may run on any worker: a profile file (a host path) cannot travel with it.
SECCOMP_CHOICES = ("default", "unconfined")
STEP_KEYS = ("name", "run", "timeout", "continue_on_error", "env", "image")
RESULTS_KEYS = ("junit", "allow_empty", "artifacts")
DEFAULT_TIMEOUT = 600.0


def load(path: str | os.PathLike, *, workspace: str | None = None,
         params: Mapping[str, str] | None = None,
         secrets: Collection[str] | None = None) -> list[JobSpec]:
    """The jobs a file describes: one, or one per matrix combination.

    ``workspace``: a directory the submitter named (`sandbox submit
    --workspace DIR`), used instead of the file's own: trusted as given.
    ``params`` and ``secrets``: as for ``parse``.
    """
    path = str(path)
    data = _read(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    if workspace is not None:
        if not os.path.isdir(workspace):
            raise JobFileError(path, None, f"--workspace {workspace}: not a directory")
        data = {**data, "workspace": os.path.realpath(workspace)}
    return parse(data, path=path, base_dir=base_dir, trusted_workspace=workspace is not None,
                 params=params, secrets=secrets)


def loads(text: bytes, name: str, *, workspace_uploaded: bool = False,
          params: Mapping[str, str] | None = None,
          secrets: Collection[str] | None = None) -> list[JobSpec]:
    """The jobs of a job file that came over the network (the daemon): TOML, YAML or
    JSON as its ``name`` ends, validated as ``load`` does, errors naming ``name``.
    ``params`` and ``secrets``: as for ``parse``.

    Its workspace can never be a directory of this host: the submitter packs
    it and sends it along (``workspace_uploaded``), and a file that names one
    without it is refused.
    """
    data = _decode(name, text)
    if data.get("workspace") is not None and not workspace_uploaded:
        raise JobFileError(name, "workspace", f"{_show(data['workspace'])} is a directory of the "
                           "submitter's: send it packed (tar.gz) beside the job file, as "
                           "`sandbox submit` does (curl: -F workspace=@ws.tar.gz)")
    return parse({k: v for k, v in data.items() if k != "workspace"}, path=name, params=params,
                 secrets=secrets)


def _read(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise JobFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    return _decode(path, text)


def _decode(path: str, text: bytes) -> dict[str, Any]:
    """A job file's data: YAML or JSON as its name ends, else TOML."""
    if path.endswith((".yaml", ".yml")):
        return _read_yaml(path, text)
    if path.endswith(".json"):
        return _read_json(path, text)
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise JobFileError(path, None, f"invalid TOML: {exc}") from exc


def _read_yaml(path: str, text: bytes) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as exc:
        raise JobFileError(path, None, "YAML job files need PyYAML (pip install pyyaml)") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobFileError(path, None, f"invalid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(data, dict):
        raise JobFileError(path, None, "expected a mapping of keys at the top level")
    return data


def _read_json(path: str, text: bytes) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobFileError(path, None, f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise JobFileError(path, None, "expected an object of keys at the top level")
    return data


def parse(data: Mapping[str, Any], *, path: str = "<job>", base_dir: str = ".",
          trusted_workspace: bool = False, params: Mapping[str, str] | None = None,
          secrets: Collection[str] | None = None) -> list[JobSpec]:
    """Validate a job file's data; one JobSpec per matrix combination.

    ``trusted_workspace``: the workspace was named by the submitter, not the
    file, and may be anywhere. ``params``: `--param` values (each must be
    declared under [params]). ``secrets``: the names of the secrets given at
    submit time (each must be listed by a step or service, and the other way
    round); None when the file is only validated.
    """
    v = _Validator(path)
    v.keys(data, TOP_KEYS + ci_keys.TOP_KEYS, None)
    image = v.string(data, "image")
    name = v.string(data, "name", required=True)
    build = _build(v, data.get("build"), base_dir, image)
    workspace = _workspace(v, data, base_dir, trusted_workspace)
    timeout = v.duration(data, "timeout", DEFAULT_TIMEOUT)
    limits = _limits(v, data.get("limits"))
    env = v.env(data.get("env"), "env")
    steps = _steps(v, data.get("steps"))
    results = _results(v, data.get("results"))
    ci_fields = ci_keys.job_fields(v, data, params)
    base = JobSpec(name=name, image=image or "host", build=build, workspace=workspace,
                   timeout=timeout, limits=limits, env=_with_params(v, ci_fields["params"], env),
                   steps=steps, results=results,
                   source=os.path.abspath(path) if path != "<job>" else None, **ci_fields,
                   **_security(v, data.get("security")))
    combos = _matrix(v, data.get("matrix"))
    if not combos:
        specs = [base]
    else:
        specs = [replace(base, name=_matrix_name(base.name, combo), env={**base.env, **combo},
                         matrix=combo) for combo in combos]
    for spec in specs:
        ci_keys.check(v, spec, secrets)
    return specs


def _with_params(v: "_Validator", params: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """The job's env with its parameters in it (a name in both is refused: which would win?)."""
    for name in params:
        if name in env:
            raise JobFileError(v.path, f"env.{name}", "also a parameter: expected it under [params] "
                               "only (set it with --param)")
    return {**params, **env}


def _workspace(v: "_Validator", data: Mapping[str, Any], base_dir: str,
               trusted: bool = False) -> str | None:
    """The workspace directory, which a job file may only take from its own tree.

    A job file can come from an untrusted repository: a workspace that is a
    link, passes through one, or lies outside the file's directory (``..``,
    an absolute path, ``~``) would copy host files into the job. The
    submitter can name any directory with `sandbox submit --workspace DIR`.
    """
    rel = v.string(data, "workspace")
    if rel is None:
        return None
    if trusted:
        return rel
    base = os.path.realpath(base_dir)
    full = os.path.normpath(os.path.join(base, rel))
    inside = "a directory inside the job file's directory, reached through no symbolic link"
    hint = "(or pass --workspace DIR to sandbox submit to use another)"
    if full != base and not full.startswith(base.rstrip("/") + "/"):
        raise JobFileError(v.path, "workspace", f"{rel!r} is outside the job file's directory: "
                           f"expected {inside} {hint}")
    link = _first_link(base, full)
    if link is not None:
        raise JobFileError(v.path, "workspace", f"{rel!r}: {link} is a symbolic link (to "
                           f"{os.readlink(link)}): expected {inside} {hint}")
    if not os.path.isdir(full):
        raise JobFileError(v.path, "workspace", f"{rel!r} is not a directory (resolved to {full})")
    return full


def _build(v: "_Validator", value: object, base_dir: str, tag: str | None) -> BuildSpec | None:
    """``build = "path"`` or ``build = { file = "path", args, network, egress, target }``."""
    if value is None:
        return None
    table = v.keys({"file": value} if isinstance(value, str) else value, BUILD_KEYS, "build")
    rel = v.string(table, "file", required=True, where="build")
    key = "build" if isinstance(value, str) else "build.file"
    base = os.path.realpath(base_dir)
    path = os.path.normpath(os.path.join(base, rel))
    inside = "a Sandboxfile inside the job file's directory, reached through no symbolic link"
    if not path.startswith(base.rstrip("/") + "/"):
        raise JobFileError(v.path, key, f"{rel!r} is outside the job file's directory: "
                           f"expected {inside}")
    link = _first_link(base, path)
    if link is not None:
        raise JobFileError(v.path, key, f"{rel!r}: {link} is a symbolic link: expected {inside}")
    if not os.path.isfile(path):
        raise JobFileError(v.path, key, f"{rel!r} is not a file (resolved to {path}): "
                           f"expected {inside}")
    network = v.string(table, "network", where="build") or "none"
    if network == "host":
        raise JobFileError(v.path, "build.network",
                           "'host': expected none, bridge or a network name")
    return BuildSpec(file=path, args=v.env(table.get("args"), "build.args"), network=network,
                     egress=v.boolean(table, "egress", where="build"),
                     target=v.string(table, "target", where="build"), tag=tag)


def _first_link(base: str, path: str) -> str | None:
    """The first component from ``base`` (excluded) down to ``path`` that is a symlink."""
    current = base
    for part in os.path.relpath(path, base).split(os.sep):
        if part in (".", ""):
            continue
        current = os.path.join(current, part)
        if os.path.islink(current):
            return current
    return None


def _limits(v: "_Validator", table: object) -> dict[str, Any]:
    return ci_keys.limits(v, table, "limits")


def _security(v: "_Validator", table: object) -> dict[str, Any]:
    """The [security] table: the seccomp profile and the user namespace of every step."""
    if table is None:
        return {}
    checked = v.keys(table, SECURITY_KEYS, "security")
    found: dict[str, Any] = {}
    for key, choices in (("seccomp", SECCOMP_CHOICES), ("userns", USERNS_MODES)):
        value = v._get(checked, key, _one_of(choices), " or ".join(f'"{c}"' for c in choices), "security")
        if value is not None:
            found[key] = value
    ports = v._get(checked, "allow_host_ports", _port_list, "a list of TCP/UDP ports from 1 to 65535",
                   "security")
    if ports:
        found["allow_host_ports"] = tuple(dict.fromkeys(ports))
    return found


def _port_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in value)


def _one_of(choices: tuple[str, ...]) -> Callable[[object], bool]:
    """A check that a value is one of ``choices``."""
    return lambda value: value in choices


def _steps(v: "_Validator", steps: object) -> tuple[Step, ...]:
    if not isinstance(steps, list) or not steps:
        raise JobFileError(v.path, "steps", "expected at least one [[steps]] table "
                           "with name and run")
    result, seen = [], set()
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        v.keys(step, STEP_KEYS + ci_keys.STEP_KEYS, where)
        name = v.string(step, "name", required=True, where=where)
        if name in seen:
            raise JobFileError(v.path, f"{where}.name", f"{name!r} is used twice: expected unique step names")
        seen.add(name)
        result.append(Step(
            name=name, run=v.string(step, "run", required=True, where=where),
            timeout=v.duration(step, "timeout", None, where=where),
            continue_on_error=v.boolean(step, "continue_on_error", where=where),
            env=v.env(step.get("env"), f"{where}.env"), image=v.string(step, "image", where=where),
            **ci_keys.step_fields(v, step, where)))
    return tuple(result)


def _results(v: "_Validator", table: object) -> ResultsSpec:
    if table is None:
        return ResultsSpec()
    table = v.keys(table, RESULTS_KEYS, "results")
    return ResultsSpec(junit=v.globs(table, "junit", "results"),
                       allow_empty=v.boolean(table, "allow_empty", where="results"),
                       artifacts=v.globs(table, "artifacts", "results"))


def _matrix(v: "_Validator", table: object) -> list[dict[str, str]]:
    if table is None:
        return []
    if not isinstance(table, dict) or not table:
        raise JobFileError(v.path, "matrix", "expected a table of NAME = [values]")
    axes = []
    for name, values in table.items():
        if not _ENV_KEY_RE.match(str(name)):
            raise JobFileError(v.path, f"matrix.{name}", "expected a variable name (letters, digits, _)")
        if not isinstance(values, list) or not values or any(isinstance(x, (dict, list)) for x in values):
            raise JobFileError(v.path, f"matrix.{name}", "expected a non-empty list of strings or numbers")
        axes.append([(name, str(x)) for x in values])
    return [dict(combo) for combo in itertools.product(*axes)]


def _matrix_name(name: str, combo: Mapping[str, str]) -> str:
    return f"{name} ({', '.join(f'{k}={v}' for k, v in combo.items())})"
