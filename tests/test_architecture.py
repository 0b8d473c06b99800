"""The floors of docs/architecture.md, checked on every import of the package: imports go one way, down.

A room may import its own modules and any room on a lower floor; never a room on its own floor or above. Every
import counts, at the top of a file or inside a function, so a climbing import cannot hide in a handler.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "deepmedix"
FLOORS: dict[str, int] = {
    "errors": 0,
    "options": 1,
    "io": 1,
    "protocol": 1,
    "data": 2,
    "labeler": 2,
    "rewards": 3,
    "endpoints": 3,
    "models": 3,
    "annotation": 3,
    "training": 4,
    "arena": 4,
    "inference": 5,
    "evaluation": 6,
    "demo": 7,
    "cli": 8,
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cli"  # the package's own __init__ is the top, like cli


@functools.cache
def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # `from deepmedix.rewards import metrics` imports the submodule, not the package's own code
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in _modules()]
            found += [(node.lineno, m) for m in submodules] or [(node.lineno, base)]
    return [(line, name) for line, name in found if name == "deepmedix" or name.startswith("deepmedix.")]


def test_every_room_has_a_floor() -> None:
    rooms = {_room(m) for m in _modules() if m != "deepmedix"}
    assert rooms <= set(FLOORS), f"rooms without a floor in docs/architecture.md: {sorted(rooms - set(FLOORS))}"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_go_down_the_floors(module: str) -> None:
    path = _modules()[module]
    source = _room(module)
    climbing = []
    for line, target in _imports(module, path):
        room = _room(target)
        if room == source or target == "deepmedix":  # its own room, or the version string
            continue
        if FLOORS[room] >= FLOORS[source]:
            climbing.append(f"{path.name}:{line} imports {target} (floor {FLOORS[room]}, this is {FLOORS[source]})")
    assert not climbing, "\n".join(climbing)


def test_no_import_circles_between_modules() -> None:
    """No module reaches itself through imports (at the top or inside functions): every room reads bottom-up."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for _, target in _imports(module, path):
            while target not in modules and "." in target:  # `from deepmedix.x import name` names a module or not
                target = target.rsplit(".", 1)[0]
            if target != module and target != "deepmedix":
                targets.add(target)
        graph[module] = targets
    circles = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            circles.append(" → ".join([*path[path.index(node) :], node]))
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])
    assert not circles, "\n".join(circles)
