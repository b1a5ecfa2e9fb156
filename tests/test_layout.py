"""The code's shape, checked: small engine modules, short functions, one dispatcher.

Limits (issue 23): no module of the engine (`dipmed/restoration/`) over 300 lines; no
function in `dipmed/` over 60 lines unless named in `LONG_FUNCTIONS` with the reason one
algorithm needs it (none today); `restore.py` picks a method from its table, never by
comparing `task.kind`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dipmed"
MODULE_LINES = 300
FUNCTION_LINES = 60
LONG_FUNCTIONS: dict[str, str] = {}  # "path.py:name" -> why one algorithm needs it


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_engine_module_is_over_300_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in (PACKAGE / "restoration").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MODULE_LINES
    }
    assert not long, long


def test_no_function_is_over_60_lines():
    long = {
        f"{p.relative_to(PACKAGE)}:{name}": n
        for p in PACKAGE.rglob("*.py")
        for name, n in _functions(p)
        if n > FUNCTION_LINES and f"{p.relative_to(PACKAGE)}:{name}" not in LONG_FUNCTIONS
    }
    assert not long, long


def test_the_dispatcher_compares_no_task_kind():
    tree = ast.parse((PACKAGE / "restoration" / "restore.py").read_text())
    compared = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(isinstance(x, ast.Attribute) and x.attr == "kind" for x in ast.walk(node))
    ]
    assert not compared, compared
    from dipmed.restoration.restore import METHODS

    for kind, methods in METHODS.items():
        assert methods and all(callable(m.chosen) and callable(m.run) for m in methods), kind
