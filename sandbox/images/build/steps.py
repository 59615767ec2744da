"""One stage's instructions as build steps, with every variable expanded.

A stage is walked in order, keeping what the Dockerfile rules keep while
building: the ARGs declared in the stage (their values from ``--build-arg``,
else their defaults, else the global ARG of that name), and the image config
(ENV, WORKDIR, USER, SHELL, CMD, ...). Each instruction becomes a Step whose
action holds the values after expansion; that action, as canonical JSON
(``Step.what``), is what the cache key is made of. RUN gets the stage's ARGs
and ENV in its environment (ENV wins), as Docker gives them; an ARG step keys
on its names only, so a new value misses the cache where it is used.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace

from ...errors import BuildFileError
from . import instructions as ins
from .config import ImageConfig
from .source import Location
from .words import expand, expand_words


@dataclass(frozen=True)
class FromAction:
    image: str | None  # an image name, or None when the base is a stage
    stage: int | None = None


@dataclass(frozen=True)
class RunAction:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    user: str


@dataclass(frozen=True)
class CopyAction:
    sources: tuple[str, ...]
    dest: str
    dest_is_dir: bool
    stage: int | None = None   # --from a stage of this file
    image: str | None = None   # --from an image
    chown: str | None = None
    chmod: int | None = None
    add: bool = False


@dataclass(frozen=True)
class ConfigAction:
    """A change to the image config only (ENV, WORKDIR, USER, CMD, ...): no layer."""

    change: str


Action = FromAction | RunAction | CopyAction | ConfigAction


@dataclass(frozen=True)
class Step:
    loc: Location
    text: str
    action: Action
    number: int = 0

    @property
    def what(self) -> str:
        """The step as canonical JSON: the instruction's part of its cache key."""
        kind = type(self.action).__name__
        return json.dumps([kind, asdict(self.action)], sort_keys=True, separators=(",", ":"))

    @property
    def makes_layer(self) -> bool:
        return isinstance(self.action, (RunAction, CopyAction))


@dataclass(frozen=True)
class StageRefs:
    """How names in ``--from`` and FROM resolve: stage names and indexes of the file."""

    by_name: Mapping[str, int]
    count: int

    def stage_of(self, ref: str, current: int) -> int | None:
        if ref.isdigit():
            index = int(ref)
            if index >= current:
                earlier = f"0 to {current - 1}" if current else "there is none before this one"
                raise ValueError(f"--from={ref}: a stage index must name an earlier stage ({earlier})")
            return index
        return self.by_name.get(ref.lower())


class StageWalker:
    """Walks one stage from its base config; ``steps`` and ``config`` at the end."""

    def __init__(self, index: int, config: ImageConfig, refs: StageRefs,
                 global_args: Mapping[str, str | None], build_args: Mapping[str, str],
                 used_args: set[str]) -> None:
        self.index, self.config, self.refs = index, config, refs
        self.global_args, self.build_args, self.used_args = global_args, build_args, used_args
        self.args: dict[str, str | None] = {}
        self.steps: list[Step] = []
        self.needs: list[tuple[int, Location]] = []

    # -- variables ---------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """What ``$NAME`` expands to: the stage's ARGs with a value, then ENV over them."""
        scope = {k: v for k, v in self.args.items() if v is not None}
        scope.update(self.config.env)
        return scope

    def _word(self, text: str, escape: str) -> str:
        return expand(text, self.env(), escape)

    # -- instructions -------------------------------------------------------------

    def add(self, cmd: ins.Command, text: str, escape: str) -> None:
        """One instruction of the stage; errors come back located at it."""
        try:
            handler = getattr(self, f"_on_{type(cmd).__name__.lower()}")
            action = handler(cmd, escape)
        except ValueError as exc:
            raise BuildFileError(f"{text.split()[0]}: {exc}", line=cmd.loc.start,
                                 end_line=cmd.loc.end) from None
        if action is not None:
            self.steps.append(Step(cmd.loc, text, action))

    def _on_arg(self, cmd: ins.Arg, escape: str) -> Action:
        for name, default in cmd.items:
            if name in self.build_args:
                value: str | None = self.build_args[name]
                self.used_args.add(name)
            elif default is not None:
                value = self._word(default, escape)
            else:
                value = self.global_args.get(name)
            self.args[name] = value
        # only the names: as Docker has it, a changed value misses the cache where it is
        # used (every RUN after it gets it in its environment), not where it is declared
        return ConfigAction("ARG " + " ".join(name for name, _ in cmd.items))

    def _on_env(self, cmd: ins.Env, escape: str) -> Action:
        pairs = {}
        for key, value in cmd.pairs:
            pairs[key] = self._word(value, escape)
            self.config = self.config.with_env({key: pairs[key]})  # later pairs see earlier ones
        return ConfigAction("ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in pairs.items()))

    def _on_label(self, cmd: ins.Label, escape: str) -> Action:
        pairs = {self._word(k, escape): self._word(v, escape) for k, v in cmd.pairs}
        self.config = self.config.with_labels(pairs)
        return ConfigAction("LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in pairs.items()))

    def _on_workdir(self, cmd: ins.Workdir, escape: str) -> Action:
        path = self._word(cmd.path, escape)
        self.config = replace(self.config, workdir=self._absolute(path))
        return ConfigAction(f"WORKDIR {self.config.workdir}")

    def _on_user(self, cmd: ins.User, escape: str) -> Action:
        user = self._word(cmd.user, escape).strip()
        if not user or any(c.isspace() for c in user) or user.count(":") > 1:
            raise ValueError(f"invalid user {user!r}: expected USER[:GROUP] or UID[:GID]")
        self.config = replace(self.config, user=user)
        return ConfigAction(f"USER {user}")

    def _on_expose(self, cmd: ins.Expose, escape: str) -> Action:
        ports = []
        for word in expand_words(" ".join(cmd.ports), self.env(), escape):
            port, _, proto = word.partition("/")
            proto = (proto or "tcp").lower()
            if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("tcp", "udp", "sctp"):
                raise ValueError(f"invalid port {word!r}: expected PORT or PORT/tcp|udp|sctp, 1-65535")
            ports.append(f"{int(port)}/{proto}")
        self.config = self.config.with_exposed(tuple(ports))
        return ConfigAction("EXPOSE " + " ".join(ports))

    def _on_shell(self, cmd: ins.Shell, escape: str) -> Action:
        self.config = replace(self.config, shell=cmd.args)
        return ConfigAction(f"SHELL {json.dumps(list(cmd.args))}")

    def _on_cmd(self, cmd: ins.Cmd, escape: str) -> Action:
        self.config = replace(self.config, cmd=self._argv(cmd.args, cmd.exec_form))
        return ConfigAction(f"CMD {json.dumps(list(self.config.cmd or ()))}")

    def _on_entrypoint(self, cmd: ins.Entrypoint, escape: str) -> Action:
        # a CMD inherited from the base is dropped with a new ENTRYPOINT, as Docker does
        self.config = replace(self.config, entrypoint=self._argv(cmd.args, cmd.exec_form),
                              cmd=self._own_cmd())
        return ConfigAction(f"ENTRYPOINT {json.dumps(list(self.config.entrypoint or ()))}")

    def _own_cmd(self) -> tuple[str, ...] | None:
        set_here = any(isinstance(s.action, ConfigAction) and s.action.change.startswith("CMD ")
                       for s in self.steps)
        return self.config.cmd if set_here else None

    def _on_run(self, cmd: ins.Run, escape: str) -> Action:
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(self.config.env)
        return RunAction(self._argv(cmd.args, cmd.exec_form), tuple(sorted(env.items())),
                         self.config.workdir or "/", self.config.user or "0:0")

    def _on_copy(self, cmd: ins.Copy, escape: str) -> Action:
        sources = tuple(self._word(s, escape) for s in cmd.sources)
        dest = self._word(cmd.dest, escape)
        if not dest:
            raise ValueError("the destination is empty")
        stage = image = None
        if cmd.source_stage is not None:
            ref = self._word(cmd.source_stage, escape)
            stage = self.refs.stage_of(ref, self.index)
            if stage is None:
                image = ref
            else:
                self.needs.append((stage, cmd.loc))
        if stage is None and image is None:
            for source in sources:
                check_context_path(source)
        chown = self._word(cmd.chown, escape) if cmd.chown else None
        dest_is_dir = (dest.endswith(("/", "/.", "/..")) or dest in (".", "..") or len(sources) > 1
                       or any(_glob(s) for s in sources))
        return CopyAction(sources, self._absolute(dest), dest_is_dir, stage, image, chown,
                          int(cmd.chmod, 8) if cmd.chmod else None, cmd.add)

    # -- helpers ------------------------------------------------------------------------

    def _argv(self, args: tuple[str, ...], exec_form: bool) -> tuple[str, ...]:
        return tuple(args) if exec_form else (*self.config.shell, args[0])

    def _absolute(self, path: str) -> str:
        base = self.config.workdir or "/"
        return posixpath.normpath(posixpath.join(base, path)).replace("//", "/")


def check_context_path(source: str) -> None:
    """A COPY source names a path inside the context: relative, never above it."""
    if source.startswith("/"):
        raise ValueError(f"{source!r} is an absolute path: sources are relative to the context")
    depth = 0
    for part in source.split("/"):
        depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
        if depth < 0:
            raise ValueError(f"{source!r} is outside the build context")


def _glob(text: str) -> bool:
    return any(c in text for c in "*?[")


BaseConfig = Callable[[str], ImageConfig]
