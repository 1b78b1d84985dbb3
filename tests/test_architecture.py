"""The package's own rules, checked on its source: no private name (``_name``) imported from
another package, and every CLI command short (commands parse and render; the library works)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "xtalforge"
#: Longest a command function may be, in lines (its option declarations included).
MAX_COMMAND_LINES = 45


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        out.append((".".join(rel.parts), ast.parse(path.read_text())))
    return out


def test_no_private_name_is_imported_across_packages():
    crossing = []
    for module, tree in _modules():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("xtalforge")
            ):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and _package(node.module) != _package(module):
                        crossing.append(f"{module} imports {node.module}.{alias.name}")
    assert crossing == []


def test_cli_commands_are_thin():
    long = []
    for module, tree in _modules():
        if not module.startswith("xtalforge.cli.commands"):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name != "register":
                n = node.end_lineno - node.lineno + 1
                if n > MAX_COMMAND_LINES:
                    long.append(f"{module}.{node.name}: {n} lines")
    assert long == []
