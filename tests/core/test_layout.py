"""Dependencies point one way: the runtime never imports the simulator, the benchmarks or
a test double, and memory imports nothing of omni_agent.

The robot ships omni_agent, memory, ros_nodes and serve; a module there that imported
sim, bench or a double would put simulator or benchmark code (and their dependencies) on
the robot. Every import is read from the source (nested ones, and module names handed to
importlib.import_module), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("omni_agent", "memory", "ros_nodes", "serve")
NOT_FROM_RUNTIME = ("sim", "bench", "tests")
"""The simulator, the benchmarks (with the hostile server and the throwaway PostgreSQL)
and the tests; the model-server doubles live in sim/brains."""
ALLOWED = {"ros_nodes/sim_bridge.py": {"sim"}}
"""sim_bridge is the simulator's face on ROS: it runs only in the sim graph."""
KNOWN: dict[str, str] = {}
"""Modules that break the rule today, each with why; strict, so a fix turns it green."""


def imported(path: Path) -> set[str]:
    """Every absolute module name `path` imports, however it imports it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def forbidden(module: str) -> tuple[str, ...]:
    package = module.split("/")[0]
    return (*NOT_FROM_RUNTIME, "omni_agent") if package == "memory" else NOT_FROM_RUNTIME


def breaches(module: str) -> list[str]:
    allowed = ALLOWED.get(module, set())
    bad = []
    for name in sorted(imported(ROOT / module)):
        top = name.split(".")[0]
        if top in forbidden(module) and top not in allowed:
            bad.append(name)
    return bad


MODULES = sorted(
    str(p.relative_to(ROOT)) for package in RUNTIME for p in (ROOT / package).rglob("*.py")
)


def test_every_runtime_package_is_walked() -> None:
    for package in RUNTIME:
        assert any(m.startswith(f"{package}/") for m in MODULES), package
    assert "ros_nodes/agent_host.py" in MODULES


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, marks=pytest.mark.xfail(reason=KNOWN[m], strict=True)) if m in KNOWN else m
        for m in MODULES
    ],
)
def test_runtime_module_imports_point_one_way(module: str) -> None:
    assert breaches(module) == [], f"{module} imports {', '.join(breaches(module))}"


DOUBLE = re.compile(r"\btest double\b|\ba double\b|\bdouble of\b", re.I)


@pytest.mark.parametrize("module", MODULES)
def test_no_double_lives_in_the_runtime(module: str) -> None:
    """Doubles say so in their docstring (sim/brains, bench/hostile.py); none may ship."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    assert not DOUBLE.search(ast.get_docstring(tree) or ""), f"{module} is a test double"


def test_the_walk_sees_lazy_and_string_imports(tmp_path: Path) -> None:
    """The check itself: an import inside a function and a name given to import_module
    are both seen (the site map was once loaded through a lazy `from sim.world import`)."""
    source = tmp_path / "m.py"
    source.write_text(
        "import importlib\n"
        "def f():\n"
        "    from sim.world import World\n"
        "    return importlib.import_module('bench.loop')\n"
    )
    assert imported(source) >= {"sim.world", "bench.loop"}
