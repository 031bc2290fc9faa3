"""The structure the code promises (docs/architecture.md): layers, no import cycles, types.

The layer contract in pyproject.toml (`[tool.importlinter]`) is the source of truth: each layer
imports only the layers below it, inside functions as much as at module level.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """Python code run on this checkout's sources (not whatever copy is installed)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_layer_contract_holds():
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
    )
    done = _run(code)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_back():
    """No import cycle between modules, counting imports inside functions (which hide cycles
    from the interpreter but not from a reader)."""
    sys.path.insert(0, str(SRC))
    try:
        built = grimp.build_graph("labelloop", exclude_type_checking_imports=True, cache_dir=None)
    finally:
        sys.path.remove(str(SRC))
    graph = {m: set(built.find_modules_directly_imported_by(m)) for m in built.modules}
    assert _strongly_connected(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]


def test_the_type_checker_finds_no_error():
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "src"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


#: Modules that ask `store/` for rows through named functions: they never import the database
#: library, not even for type annotations (the store names `Session`, `Connection`, `Record`).
STORE_CLIENTS = ("labelloop/project.py", "labelloop/review/")


def _imports_sqlalchemy(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "sqlalchemy" or name.startswith("sqlalchemy.") for name in names):
            return True
    return False


def test_the_services_reach_the_database_only_through_the_store():
    files = [
        p for p in sorted(SRC.rglob("*.py")) if str(p.relative_to(SRC)).startswith(STORE_CLIENTS)
    ]
    assert len(files) > 5
    assert [str(p.relative_to(SRC)) for p in files if _imports_sqlalchemy(p)] == []


def test_the_import_finder_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from sqlalchemy.orm import Session\n")
    assert _imports_sqlalchemy(module)
    module.write_text("from .store import Session\nimport sqlalchemy_utils\n")
    assert not _imports_sqlalchemy(module)
