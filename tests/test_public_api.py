"""The public API of `sandbox` and `jobs`: what the type checker sees is what a caller gets.

Both packages load their exported names on first use (PEP 562) from a table, and name
them again in an ``if TYPE_CHECKING:`` block of imports so the checker knows their types.
These tests keep the table, the imports and ``__all__`` saying the same thing.
"""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _checker_imports(package: str) -> dict[str, tuple[str, str]]:
    """The names the ``if TYPE_CHECKING:`` block imports: name -> (module, attribute)."""
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    blocks = [node for node in tree.body if isinstance(node, ast.If)
              and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    assert len(blocks) == 1, f"{package}/__init__.py has one `if TYPE_CHECKING:` block"
    imports = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            imports[alias.asname or alias.name] = (f".{node.module}", alias.name)
    return imports


def _lazy_table(package: str) -> dict[str, tuple[str, str]]:
    """The names loaded on first use: name -> (module, attribute)."""
    module = importlib.import_module(package)
    if package == "sandbox":
        return dict(module._LAZY)
    table = {}
    for name, target in module._EXPORTS.items():
        where, attribute = target if isinstance(target, tuple) else (target, name)
        table[name] = (f".{where}", attribute)
    return table


@pytest.mark.parametrize("package", ["sandbox", "jobs"])
def test_the_checker_sees_every_exported_name_where_it_is_loaded_from(package):
    assert _checker_imports(package) == _lazy_table(package)


@pytest.mark.parametrize("package", ["sandbox", "jobs"])
def test_all_lists_exactly_the_exported_names(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(_lazy_table(package))
    for name in module.__all__:
        assert getattr(module, name) is not None, name
