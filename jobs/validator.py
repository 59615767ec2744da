"""Typed getters for job files: each wrong value is one JobFileError naming the file,
the key and what is accepted."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

from sandbox import SpecError, parse_duration

from .errors import JobFileError

ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def param_args(given: list[str]) -> dict[str, str]:
    """``--param NAME=VALUE`` arguments (the CLI's, or the daemon's ``param`` fields) as a
    dict; JobError on a malformed one."""
    from .errors import JobError

    params: dict[str, str] = {}
    for arg in given:
        name, sep, value = arg.partition("=")
        if not sep or not ENV_KEY_RE.match(name):
            raise JobError(f"--param {arg}: expected NAME=VALUE, NAME of letters, digits and _")
        params[name] = value
    return params


def show(value: Any) -> str:
    """A value as the job file wrote it (TOML/JSON style), never a Python repr."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


class Validator:
    """Typed getters that raise JobFileError naming the file, the key and what is accepted."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _key(self, where: str | None, key: str) -> str:
        return f"{where}.{key}" if where else key

    def keys(self, table: object, allowed: tuple[str, ...], where: str | None) -> dict[str, Any]:
        """``table`` itself once it is a table whose keys are all in ``allowed``."""
        if not isinstance(table, dict):
            raise JobFileError(self.path, where, "expected a table")
        for key in table:
            if key not in allowed:
                raise JobFileError(self.path, self._key(where, str(key)),
                                   f"unknown key (accepted: {', '.join(allowed)})")
        return table

    def _get(self, table: Mapping, key: str, check: Callable[[Any], bool], accepted: str,
             where: str | None, required: bool = False) -> Any:
        if key not in table:
            if required:
                raise JobFileError(self.path, self._key(where, key), f"missing: expected {accepted}")
            return None
        value = table[key]
        if not check(value):
            raise JobFileError(self.path, self._key(where, key), f"{show(value)}: expected {accepted}")
        return value

    @overload
    def string(self, table: Mapping, key: str, *, required: Literal[True],
               where: str | None = None) -> str: ...

    @overload
    def string(self, table: Mapping, key: str, *, required: bool = False,
               where: str | None = None) -> str | None: ...

    def string(self, table: Mapping, key: str, *, required: bool = False,
               where: str | None = None) -> str | None:
        return self._get(table, key, lambda x: isinstance(x, str) and x.strip() != "",
                         "a non-empty string", where, required)

    def boolean(self, table: Mapping, key: str, *, where: str | None = None) -> bool:
        return bool(self._get(table, key, lambda x: isinstance(x, bool), "true or false", where))

    def duration(self, table: Mapping, key: str, default: float | None, *,
                 where: str | None = None) -> float | None:
        if key not in table:
            return default
        try:
            seconds = parse_duration(key, table[key])
        except SpecError:
            seconds = None
        if seconds is None or seconds <= 0:
            raise JobFileError(self.path, self._key(where, key),
                               f"{show(table[key])}: expected a duration like 90, "
                               "\"30s\", \"10m\" or \"1h\"")
        return seconds

    def env(self, table: object, where: str) -> dict[str, str]:
        if table is None:
            return {}
        if not isinstance(table, dict):
            raise JobFileError(self.path, where, "expected a table of NAME = \"value\"")
        for name, value in table.items():
            if not ENV_KEY_RE.match(str(name)):
                raise JobFileError(self.path, f"{where}.{name}", "invalid name: expected letters, "
                                   "digits and _, not starting with a digit")
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise JobFileError(self.path, f"{where}.{name}", f"{show(value)}: expected a string")
        return {str(k): str(val) for k, val in table.items()}

    def globs(self, table: Mapping, key: str, where: str) -> tuple[str, ...]:
        def ok(x: object) -> bool:
            return isinstance(x, list) and all(isinstance(p, str) and p and not os.path.isabs(p)
                                               and ".." not in p.split("/") for p in x)
        return tuple(self._get(table, key, ok, "a list of relative paths or globs inside the "
                               "workspace, like [\"report.xml\"]", where) or ())

    def names(self, table: Mapping, key: str, where: str | None) -> tuple[str, ...]:
        """A list of environment-style names (secrets, dependencies), each once."""
        def ok(x: object) -> bool:
            return (isinstance(x, list) and len(set(map(str, x))) == len(x)
                    and all(isinstance(n, str) and ENV_KEY_RE.match(n) for n in x))
        return tuple(self._get(table, key, ok, "a list of distinct names (letters, digits, _), "
                               "like [\"TOKEN\"]", where) or ())

    def port(self, table: Mapping, key: str, where: str | None) -> int | None:
        def ok(x: object) -> bool:
            return isinstance(x, int) and not isinstance(x, bool) and 0 < x < 65536
        return self._get(table, key, ok, "a TCP port from 1 to 65535", where)
