"""The layers of docs/architecture.md, checked on every import in src/ (module level and inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "handssca"

#: Layer of each top-level unit (a subpackage or a module). An import may go to the same unit or to a
#: unit of a LOWER layer only: units of one layer do not import each other.
LAYERS = [
    ("frames", "allocator", "messages", "results"),
    ("io",),
    ("geometry", "ops", "hand"),
    ("config", "render", "evaluation", "fit"),
    ("environment", "data", "model"),
    ("losses", "pictures", "detect"),
    ("engine",),
    ("export", "convert"),
    ("inference", "outputs"),
    ("reconstruct",),
    ("predict", "demo", "serve"),
    ("cli",),
]
LEVEL = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _imports(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("handssca"):
            if node.module == "handssca":
                out += [(f"handssca.{a.name}", node.lineno) for a in node.names]
            else:
                out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("handssca")]
    return out


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__version__" else None


def _modules() -> dict[str, Path]:
    return {
        ".".join(("handssca", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in SRC.rglob("*.py")
    }


def test_every_unit_has_a_layer():
    units = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in SRC.rglob("*.py")} - {"__init__"}
    assert units <= set(LEVEL), f"units without a layer in tests/test_architecture.py: {sorted(units - set(LEVEL))}"
    assert sum(len(u) for u in LAYERS) == len(LEVEL)


def test_no_import_goes_up_or_sideways():
    bad = []
    for module, path in _modules().items():
        src = _unit(module)
        if src is None:
            continue  # the package's __init__: lazy entry points at the top
        for target, line in _imports(path):
            dst = _unit(target)
            if dst is None or dst == src:
                continue
            if LEVEL[dst] >= LEVEL[src]:
                bad.append(
                    f"{path.relative_to(SRC)}:{line} {src} (layer {LEVEL[src]}) imports {target} (layer {LEVEL[dst]})"
                )
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        deps = set()
        for target, _ in _imports(path):
            while target and target not in modules:  # "from handssca.x import name" where name is not a module
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):  # a package's own __init__
                deps.add(target)
        graph[module] = deps
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d) :] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("name", ["build_model", "load_model"])
def test_top_level_entry_points_are_lazy(name):
    import subprocess
    import sys

    code = (
        f"import sys, handssca; f = handssca.{name}; assert 'torch' not in sys.modules, 'import did work'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
