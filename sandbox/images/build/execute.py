"""Running a build plan: each step reused from the cache or run, then the image written.

The last stage of a build. Every stage starts from its FROM (an image of the
store, ``host``, ``scratch`` or an earlier stage's result); config steps
(ENV, WORKDIR, CMD, ...) only extend the cache key chain and the history;
RUN and COPY/ADD look their key up in the build cache and, on a miss, make a
layer and write an untagged image that the cache keeps under the key. The
key of a COPY from the context includes its sources' content digest; one
``--from`` a stage, that stage's last key; one from an image, its id.

The whole build holds the store's content lock shared (``images.writing``),
so a concurrent prune never sweeps what it made; temporary files live in
the store's work dirs, which ``sandbox gc`` removes after a crash. Nothing
is tagged before the last step succeeded: a failed build leaves its cached
steps (``image prune`` removes them) and no image.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ... import images
from ...errors import BuildFileError, BuildStepFailed, CommandNotExecutable, CommandNotFound, ImageError, SandboxError
from ...spec import Limits, NetworkSpec
from .. import layout
from .cancel import BuildCancel, BuildCancelled
from .context import Context, Files
from .copy_step import write_copy_tar
from .frontend import plan_text, read_file
from .imagefs import ImageSource
from .plan import BuildPlan, Stage, chain_key
from .progress import Progress, TextOut
from .steps import ConfigAction, CopyAction, FromAction, RunAction, Step
from .storage import Bases, State, StoredImage, cached, commit_step, finish, sandbox_ref


@dataclass(frozen=True)
class BuildRequest:
    """What `sandbox build` was asked: the context, the file, names, args, limits."""

    context: str
    file: str
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    network: NetworkSpec = field(default_factory=NetworkSpec)
    limits: Limits = field(default_factory=Limits)
    shown_file: str | None = None  # the file as the user named it, for messages


@dataclass(frozen=True)
class BuildResult:
    image: StoredImage
    steps: int
    cached: int


@dataclass
class StageResult:
    state: State
    key: str
    history: list[dict]  # config steps after the last layer, for the image written next


def build(request: BuildRequest, *, out: TextOut | None = None, quiet: bool = False,
          cancel: BuildCancel | None = None) -> BuildResult:
    """Build the image, its progress on ``out``; BuildFileError (a file line),
    BuildStepFailed or another SandboxError (BuildCancelled once ``cancel`` is set)."""
    started = time.monotonic()
    shown = request.shown_file or request.file
    try:
        text = read_file(request.file)
    except BuildFileError as exc:
        exc.file = shown  # the file as the user named it, not where it was read
        raise
    for tag in request.tags:
        _check_tag(tag)
    with images.writing():
        bases = Bases()
        plan = plan_text(text, shown, base_config=bases.config, build_args=request.build_args,
                         target=request.target)
        progress = Progress(plan.total, out=out, quiet=quiet, started=started)
        try:
            context = Context(request.context)
        except ValueError as exc:
            raise BuildFileError(str(exc), file=shown) from None
        with context:
            image = Builder(request, plan, context, progress, shown, bases,
                            cancel or BuildCancel()).run()
    progress.finished(image.id, image.tags)
    return BuildResult(image, plan.total, progress.cached)


def _check_tag(tag: str) -> None:
    from ..refs import check_taggable

    check_taggable(images.parse_reference(tag))


class Builder:
    """Runs one plan's stages in order; ``run()`` returns the target's image."""

    def __init__(self, request: BuildRequest, plan: BuildPlan, context: Context,
                 progress: Progress, shown: str, bases: Bases, cancel: BuildCancel) -> None:
        self.request, self.plan, self.context, self.progress = request, plan, context, progress
        self.shown, self.bases, self.cancel = shown, bases, cancel
        self.results: dict[int, StageResult] = {}
        self.labels = {s.index: s.label for s in plan.stages} if len(plan.stages) > 1 else {}

    def run(self) -> StoredImage:
        for stage in self.plan.stages:
            self.results[stage.index] = self._stage(stage)
        target = self.plan.stage(self.plan.target)
        result = self.results[target.index]
        what = json.dumps([target.config.to_oci(), result.history], sort_keys=True)
        key = chain_key(result.key, "image", what)
        self.cancel.check("before its image was written")
        return finish(result.state, target.config, result.history, self.request.tags, key,
                      reuse=not self.request.no_cache)

    def _stage(self, stage: Stage) -> StageResult:
        label = self.labels.get(stage.index)
        result = self._located(stage.steps[0], lambda: self._from(stage.steps[0], label))
        for step in stage.steps[1:]:
            result = self._located(step, lambda: self._step(step, result, label))  # noqa: B023 - called at once
        return result

    def _located(self, step: Step, call):
        """Run ``call``; any error it raises names the step's file and line.

        A ValueError (bad input met while running) becomes a BuildFileError; a
        command that cannot be started fails the step with 127 or 126, as in a
        shell; an OSError (a full disk) becomes one ImageError line.
        """
        keyword = step.text.split()[0]
        try:
            self.cancel.check(f"before step {step.number}/{self.plan.total}")
            return call()
        except ValueError as exc:
            raise BuildFileError(f"{keyword}: {exc}", line=step.loc.start, end_line=step.loc.end,
                                 file=self.shown) from None
        except BuildFileError as exc:
            exc.file, exc.line = exc.file or self.shown, exc.line or step.loc.start
            raise
        except BuildCancelled:
            raise
        except (CommandNotFound, CommandNotExecutable) as exc:
            failed = BuildStepFailed(f"{step.text}: {exc.message}", exit_status=exc.exit_status)
            raise self._failed(step, failed) from exc
        except BuildStepFailed as exc:
            raise self._failed(step, exc) from None
        except SandboxError as exc:
            exc.message = f"{self.shown}:{step.loc.start}: {keyword}: {exc.message}"
            raise
        except OSError as exc:
            raise ImageError(f"{self.shown}:{step.loc.start}: {keyword}: "
                             f"{exc.strerror or exc}") from exc

    def _failed(self, step: Step, exc: BuildStepFailed) -> BuildStepFailed:
        self.progress.failed(exc.message.rsplit(": ", 1)[-1])
        exc.tail = tuple(self.progress.tail)
        exc.message = f"{self.shown}:{step.loc.start}: {exc.message}"
        return exc

    def _from(self, step: Step, label: str | None) -> StageResult:
        action = step.action
        assert isinstance(action, FromAction)
        self.progress.step(step, label)
        if action.stage is not None:
            base = self.results[action.stage]
            return StageResult(base.state, chain_key(base.key, step.what), list(base.history))
        state, identity = self.bases.state(action.image or "scratch")
        return StageResult(state, chain_key("", step.what, identity), [])

    def _step(self, step: Step, result: StageResult, label: str | None) -> StageResult:
        if isinstance(step.action, ConfigAction):
            self.progress.step(step, label)
            return StageResult(result.state, chain_key(result.key, step.what),
                               result.history + [{"created_by": step.text, "empty_layer": True}])
        key = chain_key(result.key, step.what, self._content(step))
        hit = None if self.request.no_cache else cached(key)
        if hit is not None:
            self.progress.cached_step(step, label)
            return StageResult(hit, key, [])
        self.progress.step(step, label)
        with layout.work_dir("build") as work:
            layer = self._make_layer(step, result.state, work)
        history = result.history + [{"created_by": step.text, **({} if layer else {"empty_layer": True})}]
        image = commit_step(result.state, layer, key, history)
        self.progress.done()
        return StageResult(image, key, [])

    def _content(self, step: Step) -> str:
        """What a step reads besides its instruction: COPY sources' content, or their origin."""
        action = step.action
        if not isinstance(action, CopyAction):
            return ""
        if action.stage is not None:
            return "stage:" + self.results[action.stage].key
        if action.image is not None:
            return "image:" + self.bases.state(action.image)[1]
        return self.context.digest(action.sources)

    def _make_layer(self, step: Step, state: State, work: Path) -> images.Layer | None:
        action = step.action
        if isinstance(action, RunAction):
            return self._run(step, action, state, work)
        assert isinstance(action, CopyAction)
        return self._copy(action, state, work)

    def _run(self, step: Step, action: RunAction, state: State, work: Path) -> images.Layer | None:
        from .run_step import check, layer_of, run_in_sandbox

        ref = sandbox_ref(state)
        result = run_in_sandbox(action, ref, work=work, limits=self.request.limits,
                                network=self.request.network, on_output=self.progress.output,
                                cancel=self.cancel)
        self.cancel.check(f"while it ran {step.text}")
        check(result, step.text)
        return layer_of(ref, work)

    def _copy(self, action: CopyAction, state: State, work: Path) -> images.Layer:
        image = images.get(sandbox_ref(state)) if state is not None else None
        reader: Files = self.context
        if action.stage is not None or action.image is not None:
            origin = self.results[action.stage].state if action.stage is not None else self.bases.state(
                action.image or "")[0]
            reader = ImageSource(images.get(sandbox_ref(origin)))
        owner = _owner(action.chown, image)
        tar_path = work / "layer.tar"
        write_copy_tar(tar_path, action, reader, image, owner, work)
        with open(tar_path, "rb") as stream:
            return images.layer_from_tar(stream)


def _owner(chown: str | None, image: images.Image | None) -> tuple[int, int] | None:
    """--chown's uid and gid: numbers, or names from the image's /etc/passwd and /etc/group."""
    if chown is None:
        return None
    user, _, group = chown.partition(":")
    if user.isdigit() and (not group or group.isdigit()):
        return int(user), int(group or user)
    from ...users import resolve_user

    passwd = image.host_path("/etc/passwd") if image else None
    groups = image.host_path("/etc/group") if image else None
    try:
        uid, gid, _, _ = resolve_user(chown, passwd or "/nonexistent", groups or "/nonexistent")
    except (LookupError, ValueError) as exc:
        raise ValueError(f"--chown={chown}: {exc}") from None
    return uid, gid if group else uid  # a user alone: its uid is the gid too, as Docker has it

