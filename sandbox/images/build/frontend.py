"""The front end in one call: a Sandboxfile's text to a BuildPlan, errors named by file.

parse (nodes) -> instructions (typed commands) -> plan (stages, steps). This is
the edge where the file's name is added to any BuildFileError, once. ``dump``
prints a plan as plain text: the golden test cases and ``sandbox build
--dry-run`` show it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

from ...errors import BuildFileError
from .instructions import commands
from .parse import parse
from .plan import BuildPlan, make_plan
from .steps import BaseConfig, ConfigAction, CopyAction, FromAction, RunAction

#: A file larger than this is not a Sandboxfile.
MAX_SIZE = 1 << 20


def read_file(path: str) -> str:
    """The text of a Sandboxfile; BuildFileError when it cannot be read as one."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIZE + 1)
    except OSError as exc:
        raise BuildFileError(f"cannot read: {exc.strerror or exc}", file=path) from None
    if len(data) > MAX_SIZE:
        raise BuildFileError(f"larger than {MAX_SIZE >> 20} MiB: not a Sandboxfile", file=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BuildFileError(f"not UTF-8 text (byte {exc.start})", file=path) from None


def plan_text(text: str, name: str, *, base_config: BaseConfig,
              build_args: Mapping[str, str] | None = None, target: str | None = None) -> BuildPlan:
    """The plan for a Sandboxfile's ``text``; ``name`` is the file as the user wrote it."""
    try:
        parsed = parse(text)
        texts = [_display(node.keyword, node.args) for node in parsed.nodes]
        return make_plan(commands(parsed), texts, base_config=base_config, build_args=build_args,
                         target=target, escape=parsed.escape)
    except BuildFileError as exc:
        exc.file = exc.file or name
        raise


def _display(keyword: str, args: str) -> str:
    """An instruction on one line, as the build output shows it."""
    return re.sub(r"\s+", " ", f"{keyword} {args}").strip()


def dump(plan: BuildPlan) -> str:
    """The plan as text: stages, numbered steps with their expanded actions, final configs."""
    lines = [f"target {plan.stage(plan.target).label}, {plan.total} steps"]
    if plan.unused_args:
        lines.append(f"unused build args: {', '.join(plan.unused_args)}")
    for stage in plan.stages:
        needs = ", ".join(dict.fromkeys(str(n) for n, _ in stage.needs)) or "-"
        lines.append(f"stage {stage.index} {stage.label} (needs {needs})")
        for step in stage.steps:
            lines.append(f"  [{step.number}/{plan.total}] line {step.loc}: {step.text}")
            lines.append(f"      {_describe(step.action)}")
        lines.append(f"  config {json.dumps(stage.config.to_oci(), sort_keys=True)}")
    return "\n".join(lines) + "\n"


def _describe(action: object) -> str:
    if isinstance(action, FromAction):
        return f"from stage {action.stage}" if action.stage is not None else f"from image {action.image}"
    if isinstance(action, RunAction):
        env = " ".join(f"{k}={v}" for k, v in action.env)
        return (f"run {json.dumps(list(action.argv))} workdir={action.workdir} "
                f"user={action.user} env=[{env}]")
    if isinstance(action, CopyAction):
        origin = (f"stage {action.stage}" if action.stage is not None else
                  f"image {action.image}" if action.image else "context")
        extra = f" chown={action.chown}" if action.chown is not None else ""
        extra += f" chmod={action.chmod:04o}" if action.chmod is not None else ""
        verb = "add" if action.add else "copy"
        kind = "dir" if action.dest_is_dir else "path"
        return f"{verb} {json.dumps(list(action.sources))} from {origin} to {kind} {action.dest}{extra}"
    assert isinstance(action, ConfigAction)
    return f"config {action.change}"


def default_file(context: str) -> str:
    """``Sandboxfile`` in the context, else ``Dockerfile`` (so existing projects build as is)."""
    for name in ("Sandboxfile", "Dockerfile"):
        path = os.path.join(context, name)
        if os.path.exists(path):
            return path
    return os.path.join(context, "Sandboxfile")
