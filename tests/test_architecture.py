"""The rooms' dependencies point one way: front ends (cli, commands, web) -> services (reading,
history, sharing, watch, care, access) -> core -> git. Read from the sources with `ast`, every
import counted (inside functions and under TYPE_CHECKING too: a lazy import is a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "git_deployments"
SOURCE = Path(__file__).resolve().parent.parent / "src" / PACKAGE
FRONT_ENDS = ("cli", "commands", "web")
SERVICES = ("reading", "history", "sharing", "watch", "care", "access")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules `name` imports: `from a import b` counts as a.b when that is a
    module, else as a; importlib.import_module with a literal name counts too."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            targets = [node.args[0].value]
        for target in targets:
            # `import a.b.c` depends on the deepest module of that name the package has
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(name, path, known) for name, path in found.items()}


def room(module: str) -> str:
    """cli, commands, core, git, history, ... (errors and the package itself are rooms too)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in graph.items() for b in targets)


def test_the_graph_is_read(graph: dict[str, set[str]]) -> None:
    # the walk finds the imports it must judge, lazy ones included
    assert "git_deployments.core.store" in graph["git_deployments.commands.context"]
    assert "git_deployments.core.machine" in graph["git_deployments.core.store"]
    assert "git_deployments.git.repo" in graph["git_deployments.core.store"]


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_nothing_below_a_front_end_imports_one(graph: dict[str, set[str]]) -> None:
    wrong = [(a, b) for a, b in edges(graph)
             if room(b) in ("commands", "web") and room(a) not in FRONT_ENDS]
    assert wrong == []


def test_core_imports_no_service_or_front_end(graph: dict[str, set[str]]) -> None:
    wrong = [(a, b) for a, b in edges(graph)
             if room(a) == "core" and room(b) in (*SERVICES, *FRONT_ENDS)]
    assert wrong == []


def test_git_imports_only_errors(graph: dict[str, set[str]]) -> None:
    wrong = [(a, b) for a, b in edges(graph)
             if room(a) == "git" and room(b) not in ("git", "errors")]
    assert wrong == []


def test_a_cycle_and_a_lazy_import_are_seen(tmp_path: Path) -> None:
    # the checks judge what they claim to: a cycle through a function-level import is found
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from git_deployments.core import store\n")
    known = {"git_deployments.core", "git_deployments.core.store"}
    assert imported("git_deployments.x", source, known) == {"git_deployments.core.store"}
