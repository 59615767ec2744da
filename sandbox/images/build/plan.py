"""A Sandboxfile's commands as a build plan: stages linked, pruned, ordered, numbered.

The third stage of a build, after BuildKit's ``dockerfile2llb``: the commands
are split into stages at each FROM (global ARGs before the first), the
stages are linked (``FROM name`` names an earlier stage; ``COPY --from=``
names any stage, by name or index, or else an image), cycles are refused,
and only the stages the target needs are kept, each after the stages it
needs. Every kept step is numbered across the plan, as BuildKit's
``[3/7]``. Cache keys chain each step's canonical instruction (``Step.what``)
to its parent's key (``chain_key``); the executor adds what only it can know:
the base image's id and the content of COPY sources.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ...errors import BuildFileError
from . import instructions as ins
from .config import ImageConfig
from .source import Location
from .steps import BaseConfig, FromAction, StageRefs, StageWalker, Step
from .words import expand


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: FromAction
    steps: tuple[Step, ...]
    config: ImageConfig
    needs: tuple[tuple[int, Location], ...]  # the stages it reads, and where

    @property
    def label(self) -> str:
        return self.name or f"stage-{self.index}"


@dataclass(frozen=True)
class BuildPlan:
    stages: tuple[Stage, ...]      # the kept stages, each after those it needs
    target: int
    unused_args: tuple[str, ...]   # --build-arg names no ARG declared

    @property
    def total(self) -> int:
        return sum(len(s.steps) for s in self.stages)

    def stage(self, index: int) -> Stage:
        return next(s for s in self.stages if s.index == index)


def chain_key(parent: str, what: str, content: str = "") -> str:
    """A step's cache key: its parent's key, its instruction, the content it reads."""
    digest = hashlib.sha256()
    for part in (parent, what, content):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def make_plan(commands: list[ins.Command], texts: list[str], *, base_config: BaseConfig,
              build_args: Mapping[str, str] | None = None, target: str | None = None,
              escape: str = "\\") -> BuildPlan:
    """The plan for ``commands`` (``texts``: each one's text, shown in output)."""
    build_args = dict(build_args or {})
    used: set[str] = set()
    global_args, chunks = _split_stages(commands, texts, build_args, used, escape)
    refs = StageRefs({c[0].name: i for i, c in enumerate(chunks) if c[0].name}, len(chunks))
    stages: list[Stage] = []
    for index, chunk in enumerate(chunks):
        stages.append(_walk_stage(index, chunk, stages, refs, global_args, build_args, used, escape,
                                  base_config))
    target_index = _target_index(stages, target)
    order = _needed_order(stages, target_index)
    kept = [stages[i] for i in order]
    numbered, number = [], 0
    for stage in kept:
        steps = []
        for step in stage.steps:
            number += 1
            steps.append(replace(step, number=number))
        numbered.append(replace(stage, steps=tuple(steps)))
    unused = tuple(sorted(set(build_args) - used))
    return BuildPlan(tuple(numbered), target_index, unused)


def _split_stages(commands: list[ins.Command], texts: list[str], build_args: Mapping[str, str],
                  used: set[str], escape: str) -> tuple[dict, list[list]]:
    """The global ARGs (name -> value), and the commands of each stage, FROM first."""
    global_args: dict[str, str | None] = {}
    chunks: list[list] = []
    for cmd, text in zip(commands, texts):
        if isinstance(cmd, ins.From):
            chunks.append([cmd, []])
        elif chunks:
            chunks[-1][1].append((cmd, text))
        elif isinstance(cmd, ins.Arg):
            for name, default in cmd.items:
                if name in build_args:
                    global_args[name] = build_args[name]
                    used.add(name)
                else:
                    scope = {k: v for k, v in global_args.items() if v is not None}
                    global_args[name] = expand(default, scope, escape) if default is not None else None
        else:
            raise BuildFileError(f"{text.split()[0]} before the first FROM: only ARG may come "
                                 "before FROM", line=cmd.loc.start, end_line=cmd.loc.end)
    if not chunks:
        raise BuildFileError("no FROM instruction: a Sandboxfile starts with FROM IMAGE "
                             "(scratch, busybox, host or a stored image)", line=None)
    for chunk, text in zip(chunks, [t for c, t in zip(commands, texts) if isinstance(c, ins.From)]):
        chunk.append(text)
    _check_unique_names([c[0] for c in chunks])
    return global_args, chunks


def _check_unique_names(froms: list[ins.From]) -> None:
    seen: dict[str, Location] = {}
    for cmd in froms:
        if cmd.name is None:
            continue
        if cmd.name in seen:
            raise BuildFileError(f"FROM: the stage name {cmd.name!r} is already used on line "
                                 f"{seen[cmd.name].start}", line=cmd.loc.start)
        seen[cmd.name] = cmd.loc


def _walk_stage(index: int, chunk: list, earlier: list[Stage], refs: StageRefs,
                global_args: Mapping[str, str | None], build_args: Mapping[str, str],
                used: set[str], escape: str, base_config: BaseConfig) -> Stage:
    from_cmd, body, from_text = chunk
    scope = {k: v for k, v in global_args.items() if v is not None}
    try:
        image = expand(from_cmd.image, scope, escape)
    except ValueError as exc:
        raise BuildFileError(f"FROM: {exc}", line=from_cmd.loc.start) from None
    base = _base(image, from_cmd, earlier, index)
    config = earlier[base.stage].config if base.stage is not None else _external_config(
        base_config, image, from_cmd)
    walker = StageWalker(index, config, refs, global_args, build_args, used)
    walker.steps.append(Step(from_cmd.loc, from_text, base))
    for cmd, text in body:
        walker.add(cmd, text, escape)
    needs = [(base.stage, from_cmd.loc)] if base.stage is not None else []
    return Stage(index, from_cmd.name, base, tuple(walker.steps), walker.config,
                 tuple(needs + walker.needs))


def _base(image: str, cmd: ins.From, earlier: list[Stage], index: int) -> FromAction:
    """What FROM names: an earlier stage (by name) or an image."""
    for stage in earlier:
        if stage.name is not None and stage.name == image.lower():
            return FromAction(None, stage.index)
    if not image or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$", image):
        raise BuildFileError(f"FROM: invalid image name {image!r}: expected scratch, busybox, "
                             "host, NAME[:TAG] or the name of an earlier stage", line=cmd.loc.start)
    if cmd.name is not None and image.lower() == cmd.name:
        raise BuildFileError(f"FROM: stage {cmd.name!r} cannot start from itself",
                             line=cmd.loc.start)
    return FromAction(image)


def _external_config(base_config: BaseConfig, image: str, cmd: ins.From) -> ImageConfig:
    if image == "scratch":
        return ImageConfig()
    try:
        return base_config(image)
    except BuildFileError as exc:
        raise BuildFileError(f"FROM: {exc.message}", line=cmd.loc.start) from None


def _target_index(stages: list[Stage], target: str | None) -> int:
    if target is None:
        return len(stages) - 1
    for stage in stages:
        if stage.name == target.lower():
            return stage.index
    names = ", ".join(s.name for s in stages if s.name) or "none"
    raise BuildFileError(f"--target {target!r}: no stage of that name (named stages: {names})")


def _needed_order(stages: list[Stage], target: int) -> list[int]:
    """The stages ``target`` needs, itself last, each after its needs; cycles refused."""
    order: list[int] = []
    state: dict[int, str] = {}

    def visit(index: int, path: list[int], loc: Location | None) -> None:
        if state.get(index) == "done":
            return
        if state.get(index) == "visiting":
            cycle = path[path.index(index):] + [index]
            names = " -> ".join(stages[i].label for i in cycle)
            raise BuildFileError(f"circular dependency between stages: {names}",
                                 line=loc.start if loc else None)
        state[index] = "visiting"
        for need, need_loc in stages[index].needs:
            visit(need, path + [index], need_loc)
        state[index] = "done"
        order.append(index)

    visit(target, [], None)
    return order
