"""The package's shape (docs/design.md, "Layout"): every module imports only modules of its own
layer or of the layers below it, there is no import cycle, and no module or function grows past
the size a reader can hold. Read from the source's imports, lazy ones included."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "speakerid"

# lowest first; a module may import its own layer and the ones above it in this list
LAYERS = [
    ("errors", "timebase", "progress", "smoothing", "rowstore", "outputs"),
    ("media",),
    ("features",),
    ("faces",),
    ("model",),
    ("evidence", "reliability", "decoding", "options"),
    ("sync", "speakers"),
    ("output", "export", "render"),
    ("cli", "batch", "train", "examples", "__main__", ""),
]
# re-exports that keep an older import working: the old home names a function that moved up
COMPAT = {("speakerid.sync", "speakerid.output.plots")}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The speakerid modules ``name`` imports (a name imported from a package that is itself a
    module counts as that module)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("speakerid"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("speakerid"):
                continue
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            found.update(subs if subs and len(subs) == len(node.names) else [mod])
    return {m for m in found if m in known and m != name}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def test_no_module_imports_a_higher_layer(graph):
    wrong = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
             for m, deps in graph.items() for d in sorted(deps)
             if _layer(d) > _layer(m) and (m, d) not in COMPAT]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle(graph):
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                cyc = visit(d)
                if cyc:
                    return cyc
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cyc = visit(m)
            assert cyc is None, " → ".join(cyc)


def test_modules_and_functions_stay_small():
    big = []
    for path in sorted(PKG.rglob("*.py")):
        lines = path.read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            big.append(f"{path.relative_to(PKG.parent)}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    big.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name}: {n} lines")
    assert not big, "\n".join(big)


def test_the_layering_test_sees_the_imports(graph):
    """The checks above read real edges (a parser that found none would pass them all)."""
    assert "speakerid.sync.measure" in graph and "speakerid.evidence" in graph["speakerid.sync.measure"]
    assert "speakerid.media.container" in graph["speakerid.media.video"]
    assert _layer("speakerid.evidence") > _layer("speakerid.model") > _layer("speakerid.media")
