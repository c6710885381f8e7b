"""The import structure of aic: no cycles among its modules, layers importing one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aic.compiler.pipeline import compile_model
from onnx import TensorProto
from onnx import helper as h

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"aic": "aic", "ir": "aic.ir", "frontend": "aic.frontend", "compiler": "aic.compiler",
          "codegen": "aic.codegen", "runtime": "aic.runtime"}  # fmt: skip


def _modules() -> dict[str, Path]:
    """Every aic module name -> its file (a package is its __init__.py)."""
    found = {}
    for folder, package in LAYERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The aic modules that `name` imports, at module level or inside functions (not under TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m in modules and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (found := dfs(n)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := dfs(m)):
            return found
    return None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    for name in graph:  # a package's __init__ importing its own submodules is how packages work
        graph[name] = {m for m in graph[name] if not (name.startswith(f"{m}.") and (modules[m].name == "__init__.py"))}
    return graph


def test_no_import_cycle_among_aic_modules():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_scan_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_ir_imports_nothing_else_of_aic():
    for name, deps in _graph().items():
        if name.startswith("aic.ir"):
            assert all(d.startswith("aic.ir") for d in deps), f"{name} imports {sorted(deps)}"


def _imported_after(code: str) -> set[str]:
    """The modules `code` imports, run in a fresh interpreter (`python -X importtime`)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    return {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    model = h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y]))
    path = tmp_path_factory.mktemp("tiny") / "tiny.so"
    compile_model(model, output=path)
    return path


HEAVY = ("aic.ir", "aic.ir.ops", "aic.compiler", "aic.frontend", "onnx", "llvmlite")


def test_loading_a_model_imports_no_compiler(tiny_model):
    feeds = "{'x': numpy.ones((2, 3), 'float32')}"
    modules = _imported_after(f"import numpy, aic; aic.load({str(tiny_model)!r}).run(None, {feeds})")
    assert "aic.runtime.module" in modules
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_aic_run_imports_no_frontend(tiny_model, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    code = f"from aic.cli import main; main(['run', {str(tiny_model)!r}, '--input', 'x={tmp_path / 'x.npy'}'])"
    modules = _imported_after(code)
    assert "aic.cli_compile" in modules
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
