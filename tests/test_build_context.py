"""The build context (no root): ignore files, sources that lead out, content digests."""

from __future__ import annotations

import os

import pytest

from sandbox.images.build.context import Context
from sandbox.images.build.ignore import IgnoreRules


@pytest.mark.parametrize("patterns, path, ignored", [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),            # * never crosses a /
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),
    (["node_modules"], "node_modules/x/y.js", True),  # a matched directory takes its content
    (["/build"], "build/out", True),
    (["build/"], "build/out", True),
    (["docs/*.md", "!docs/README.md"], "docs/README.md", False),
    (["docs/*.md", "!docs/README.md"], "docs/other.md", True),
    (["*", "!keep"], "keep", False),
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[a-c].txt"], "b.txt", True),
    (["[!a-c].txt"], "b.txt", False),
    (["# comment", "", "x"], "x", True),
    (["!x"], "x", False),
])
def test_ignore_rules(patterns, path, ignored):
    assert IgnoreRules(patterns).ignored(path) is ignored


@pytest.fixture
def context(tmp_path):
    root = tmp_path / "ctx"
    (root / "src/sub").mkdir(parents=True)
    (root / "src/a.py").write_text("a")
    (root / "src/sub/b.py").write_text("b")
    (root / "node_modules/x").mkdir(parents=True)
    (root / "node_modules/x/i.js").write_text("i")
    os.symlink("src/a.py", root / "inside")
    os.symlink("/etc/passwd", root / "out")
    os.symlink("../../..", root / "up")
    os.symlink(str(root / "src"), root / "absolute-inside")
    (root / ".dockerignore").write_text("node_modules\n")
    (tmp_path / "secret").write_text("s")
    return root


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_sources_resolve_inside_the_context(context):
    before = _fds()
    with Context(str(context)) as ctx:
        assert [s.path for s in ctx.sources("src")] == ["src"]
        assert [(s.name, s.path) for s in ctx.sources("inside")] == [("inside", "src/a.py")]
        assert [s.path for s in ctx.sources("absolute-inside/sub")] == ["src/sub"]
        assert [s.name for s in ctx.sources("src/*.py")] == ["a.py"]
        walked = [(e.rel, e.kind) for e, _ in ctx.entries("src")]
        assert walked == [("", "dir"), ("a.py", "file"), ("sub", "dir"), ("sub/b.py", "file")]
        links = {e.rel: e.link for e, _ in ctx.entries("") if e.kind == "link"}
        assert links["out"] == "/etc/passwd"  # inside a copied directory a link stays a link
    assert _fds() == before


@pytest.mark.parametrize("source, message", [
    ("../secret", "outside the build context"),
    ("out", "symbolic link pointing outside"),
    ("up/etc/passwd", "symbolic link pointing outside"),
    ("node_modules", "excluded by the context's ignore file"),
    ("missing", "not found in the build context"),
    ("src/a.py/x", "not found in the build context"),
    ("*.nothing", "no file in the build context matches"),
])
def test_sources_that_lead_out_or_are_not_there_are_refused(context, source, message):
    before = _fds()
    with Context(str(context)) as ctx, pytest.raises(ValueError, match=message):
        ctx.sources(source)
    assert _fds() == before


def test_special_files_are_refused(context):
    os.mkfifo(context / "src/pipe")
    with Context(str(context)) as ctx, pytest.raises(ValueError, match="a named pipe"):
        list(ctx.entries("src"))


def test_digest_follows_content_modes_and_names_not_times(context):
    def digest():
        with Context(str(context)) as ctx:
            return ctx.digest(("src",))

    first = digest()
    os.utime(context / "src/a.py", (1, 1))
    assert digest() == first
    (context / "src/a.py").write_text("A")
    changed = digest()
    assert changed != first
    os.chmod(context / "src/a.py", 0o600)
    assert digest() != changed
    (context / "node_modules/x/i.js").write_text("ignored anyway")
    os.rename(context / "src/sub/b.py", context / "src/sub/c.py")
    assert digest() not in (first, changed)


def test_sandboxignore_is_read_before_dockerignore(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    (tmp_path / ".dockerignore").write_text("a\n")
    (tmp_path / ".sandboxignore").write_text("b\n")
    with Context(str(tmp_path)) as ctx:
        assert [s.path for s in ctx.sources("a")] == ["a"]
        with pytest.raises(ValueError, match="excluded"):
            ctx.sources("b")
