"""The package's layers import one way, and no module imports itself round a cycle.

Every import counts, lazy ones inside functions too: a lazy upward import is
still a dependency of the lower layer on the higher one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "python" / "ncalm"
# Lowest first. The top-level modules (settings, atomic_json, devices, figures) are the
# base every layer may use; `ncalm/__init__.py` is a facade over ncalm.nca.
LAYERS = ["_core", "base", "nca", "lm", "data", "train", "eval", "experiment", "cli"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] == "__main__":
        return "cli"  # `python -m ncalm` is the command line
    if len(parts) == 1:
        return "nca"  # the facade re-exports the generator API
    return parts[1] if parts[1] in LAYERS else "base"


def imports(path: Path) -> set[str]:
    """The ncalm modules ``path`` imports (`from ncalm import X` counts as ncalm.X where X is a module)."""
    out = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "ncalm"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            if base.split(".")[0] != "ncalm":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (ROOT.parent / Path(*sub.split("."))).with_suffix(".py").exists() or \
                    (ROOT.parent / Path(*sub.split(".")) / "__init__.py").exists() or alias.name == "_core"
                out.add(sub if is_module else base)
    return out


GRAPH = {module_name(p): imports(p) for p in sorted(ROOT.rglob("*.py"))}


def test_the_walk_sees_the_package():
    assert {"ncalm.nca.generator", "ncalm.train.trainer", "ncalm.cli.main"} <= set(GRAPH)
    assert "ncalm.nca.config" in GRAPH["ncalm.nca.generator"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_upward_import(module):
    rank = LAYERS.index(layer(module))
    upward = sorted(m for m in GRAPH[module] if LAYERS.index(layer(m)) > rank)
    assert not upward, f"{module} ({layer(module)}) imports the higher layer(s): {upward}"


def test_nothing_below_the_cli_imports_it():
    users = sorted(m for m, deps in GRAPH.items() if layer(m) != "cli" and any(layer(d) == "cli" for d in deps))
    assert not users, f"modules below the CLI import it: {users}"


def test_no_import_cycle():
    # Depth-first search over module -> imported module edges; a back edge is a cycle.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(GRAPH.get(m, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep in GRAPH and not state.get(dep):
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if not state.get(m):
            visit(m)


def test_the_checks_can_fail(monkeypatch):
    """An upward import and a cycle put into the graph are found."""
    assert LAYERS.index(layer("ncalm.cli.main")) > LAYERS.index(layer("ncalm.nca.generator"))
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        monkeypatch.setitem(GRAPH, "ncalm.nca.config", GRAPH["ncalm.nca.config"] | {"ncalm.nca.generator"})
        test_no_import_cycle()
