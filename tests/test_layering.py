"""The shape of the tree, kept: no import cycles, and the adapters use the engine's API only.

The packages built on the engine (jobs, worker, pytest_sandbox, server) import
from ``sandbox`` the names ``sandbox/__init__.py`` exports, and the daemon's
client library ``sandbox.client`` (public in its own right: the CLI is its
client); every other module of ``sandbox`` is the engine's own. Read from the
source with ``ast`` (of the tree, only ``sandbox.__all__`` is imported); no root.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sandbox

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sandbox", "jobs", "worker", "pytest_sandbox", "server")
ADAPTERS = ("jobs", "worker", "pytest_sandbox", "server")
#: Modules of ``sandbox`` an adapter may import besides the package itself.
PUBLIC_MODULES = ("sandbox.client",)


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the tree: dotted name -> (file, is a package's __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _executed(tree: ast.Module) -> list[ast.AST]:
    """Every node that can run: all but the ``if TYPE_CHECKING:`` blocks (for the checker)."""
    kept = [node for node in tree.body if not (
        isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")]
    return [inner for node in kept for inner in ast.walk(node)]


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
              modules: dict) -> list[str]:
    """The modules of the tree that an import statement loads (a name imported from a
    package that is a module of its own counts as that module, not the package)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
            for alias in node.names]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        for node in _executed(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name] |= {target for target in _imported(name, is_package, node, modules)
                                if target in modules and target != name}
    return graph


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph``, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_anywhere_in_the_tree():
    """Imports inside functions count too: a cycle closed late is still a cycle."""
    cycle = _a_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one():
    assert _a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _a_cycle({"a": {"b"}, "b": set()}) is None


def _uses_the_module(tree: ast.Module) -> bool:
    """True when ``sandbox`` in this file is the package (``import sandbox``), not a variable."""
    imported = any(isinstance(node, ast.Import) and any(a.name == "sandbox" and a.asname is None
                                                        for a in node.names)
                   for node in ast.walk(tree))
    rebound = any((isinstance(node, ast.Name) and node.id == "sandbox" and isinstance(node.ctx, ast.Store))
                  or (isinstance(node, ast.arg) and node.arg == "sandbox")
                  for node in ast.walk(tree))
    return imported and not rebound


def _engine_internals(path: Path, root: Path = ROOT) -> list[str]:
    """What a file of an adapter takes from ``sandbox`` beyond its API (named from ``root``)."""
    exported = set(sandbox.__all__)
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "sandbox":
                found += [f"from sandbox import {a.name}" for a in node.names
                          if a.name not in exported and not a.name.startswith("__")]
            elif node.module.startswith("sandbox.") and not node.module.startswith(PUBLIC_MODULES):
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names
                      if a.name.startswith("sandbox.") and not a.name.startswith(PUBLIC_MODULES)]
    if _uses_the_module(tree):
        found += [f"sandbox.{node.attr}" for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "sandbox" and node.attr not in exported
                  and not node.attr.startswith("__")]
    return [f"{path.relative_to(root)}:{what}" for what in found]


def test_the_adapters_use_only_what_the_engine_exports():
    found = [what for package in ADAPTERS for path in sorted((ROOT / package).rglob("*.py"))
             for what in _engine_internals(path)]
    assert found == []


def test_the_boundary_check_sees_each_way_past_the_api(tmp_path):
    source = tmp_path / "adapter.py"
    source.write_text("import sandbox\nimport sandbox.process\nfrom sandbox.runtime import run\n"
                      "from sandbox import Sandbox, _LAZY\nfrom sandbox.client import Client\n"
                      "def f():\n    return sandbox.state, sandbox.Sandbox, sandbox.__file__\n")
    found = {what.split(":", 1)[1] for what in _engine_internals(source, root=tmp_path)}
    assert found == {"import sandbox.process", "from sandbox.runtime import ...",
                     "from sandbox import _LAZY", "sandbox.state"}

