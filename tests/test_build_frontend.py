"""The Sandboxfile front end (no root): golden cases, words and variables, the error printer.

tests/build_cases/ok/<case>/ holds a Sandboxfile and the plan it must give
(expected.txt, as ``frontend.dump`` prints it); optional ``build-args``
(KEY=VALUE lines) and ``target`` files. tests/build_cases/fail/<case>/ holds a
Sandboxfile that must be refused and its one-line error (expected.txt).
``UPDATE_GOLDEN=1`` rewrites the expected files from what the code gives.
"""

from __future__ import annotations

import os

import pytest

from sandbox.errors import BuildFileError
from sandbox.images.build.config import ImageConfig
from sandbox.images.build.frontend import dump, plan_text
from sandbox.images.build.source import render
from sandbox.images.build.words import expand, expand_words, split_raw

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build_cases")
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

#: The images the cases may start from, as the store would describe them.
IMAGES = {
    "busybox": ImageConfig(),
    "withcmd": ImageConfig(env=(("PATH", "/usr/bin:/bin"),), cmd=("sh",), workdir="/home"),
}


def base_config(name: str) -> ImageConfig:
    if name not in IMAGES:
        raise BuildFileError(f"image {name!r} not found (known: {', '.join(sorted(IMAGES))})")
    return IMAGES[name]


def _cases(kind: str) -> list[str]:
    return sorted(os.listdir(os.path.join(CASES, kind)))


def _plan(case_dir: str):
    with open(os.path.join(case_dir, "Sandboxfile")) as f:
        text = f.read()
    args = {}
    if os.path.exists(os.path.join(case_dir, "build-args")):
        with open(os.path.join(case_dir, "build-args")) as f:
            args = dict(line.strip().split("=", 1) for line in f if line.strip())
    target = None
    if os.path.exists(os.path.join(case_dir, "target")):
        with open(os.path.join(case_dir, "target")) as f:
            target = f.read().strip()
    return text, lambda: plan_text(text, "Sandboxfile", base_config=base_config,
                                   build_args=args, target=target)


def _golden(case_dir: str, got: str) -> str:
    path = os.path.join(case_dir, "expected.txt")
    if UPDATE or not os.path.exists(path):
        with open(path, "w") as f:
            f.write(got)
        if not UPDATE:
            pytest.fail(f"wrote {path}: check it and run again")
    with open(path) as f:
        return f.read()


@pytest.mark.parametrize("case", _cases("ok"))
def test_ok_case_gives_its_plan(case):
    case_dir = os.path.join(CASES, "ok", case)
    _, make = _plan(case_dir)
    got = dump(make())
    assert got == _golden(case_dir, got)


@pytest.mark.parametrize("case", _cases("fail"))
def test_bad_case_is_refused_with_its_line(case):
    case_dir = os.path.join(CASES, "fail", case)
    text, make = _plan(case_dir)
    with pytest.raises(BuildFileError) as info:
        make()
    got = str(info.value) + "\n"
    assert got.count("\n") == 1
    assert got == _golden(case_dir, got)
    shown = render(info.value, text).splitlines()
    assert shown[0] == got.strip()
    if info.value.line is not None:  # the bad line is quoted under the error
        assert shown[1].endswith(text.splitlines()[info.value.line - 1])


def test_every_case_has_a_reason_to_exist():
    assert len(_cases("ok")) >= 8 and len(_cases("fail")) >= 20


# -- words and variables ------------------------------------------------------------

ENV = {"A": "1", "EMPTY": "", "SP": "a b"}


@pytest.mark.parametrize("text, want", [
    ("$A", "1"), ("${A}", "1"), ("x${A}y", "x1y"), ("$NOPE", ""), ("$", "$"), ("$1", "$1"),
    ("${NOPE:-d}", "d"), ("${EMPTY:-d}", "d"), ("${EMPTY-d}", ""), ("${A:+s}", "s"),
    ("${EMPTY:+s}", ""), ("${EMPTY+s}", "s"), ("'$A'", "$A"), ('"$A"', "1"), ("\\$A", "$A"),
    ('"a\\"b"', 'a"b'), ("a\\ b", "a b"), ("${NOPE:-${A}}", "1"), ('"${SP}"', "a b"),
])
def test_expand(text, want):
    assert expand(text, ENV) == want


def test_words_split_at_unquoted_space_only():
    assert expand_words('a "b c" $SP \'d e\'', ENV) == ["a", "b c", "a", "b", "d e"]
    assert split_raw('A="x y" B=z') == ['A="x y"', "B=z"]
    assert expand("`$A", ENV, escape="`") == "$A"


@pytest.mark.parametrize("text, message", [
    ("${", "expected a name"), ("${A", "missing }"), ("${A%x}", "bad substitution"),
    ("'open", "unmatched ' quote"), ('"open', 'unmatched " quote'), ("${NOPE:?needed}", "NOPE: needed"),
])
def test_bad_words(text, message):
    with pytest.raises(ValueError, match=message):
        expand(text, ENV)


def test_render_quotes_every_line_of_a_continued_instruction():
    text = "FROM busybox\nRUN a \\\n  && b\nFOO\n"
    error = BuildFileError("x", line=2, end_line=3, file="dir/Sandboxfile")
    assert render(error, text) == "dir/Sandboxfile:2: x\n    2 | RUN a \\\n    3 |   && b"
    assert render(BuildFileError("whole file", file="f"), text) == "f: whole file"
