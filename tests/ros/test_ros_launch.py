"""Launch files and parameter YAML: the ROS launch runtime is not in the PyPI wheels, so
the launch files are executed against recording stand-ins for `launch` / `launch_ros`,
and checked against the graphs that `python -m ros_nodes.run` starts (which the graph
tests run for real)."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from ros_nodes.graph import GRAPHS, NODES, params_file

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


class Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


def load_launch(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Recorded]:
    mods = {
        "launch": {"LaunchDescription": Recorded},
        "launch.actions": {"DeclareLaunchArgument": Recorded},
        "launch.substitutions": {"LaunchConfiguration": Recorded},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Recorded},
    }
    for name, attrs in mods.items():
        module = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(module, key, type(key, (Recorded,), {}) if value is Recorded else value)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.generate_launch_description().args[0])


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_launch_file_starts_the_same_nodes_as_the_graph(
    graph: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = load_launch(LAUNCH / f"{graph}.launch.py", monkeypatch)
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    declared = [a for a in actions if type(a).__name__ == "DeclareLaunchArgument"]
    assert [n.kwargs["name"] for n in nodes] == [s.name for s in GRAPHS[graph]]
    for node in nodes:
        assert node.kwargs["arguments"] == ["-m", NODES[node.kwargs["name"]].module]
        assert importlib.util.find_spec(node.kwargs["arguments"][1]) is not None
    assert declared[0].args[0] == "params_file"
    assert Path(declared[0].kwargs["default_value"]) == params_file(graph)


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_every_yaml_parameter_is_declared_by_its_node(graph: str) -> None:
    path = params_file(graph)
    assert path is not None
    tree = yaml.safe_load(path.read_text())
    assert set(tree) == {s.name for s in GRAPHS[graph]}
    for name, section in tree.items():
        source = Path(importlib.util.find_spec(NODES[name].module).origin).read_text()  # type: ignore[arg-type, union-attr]
        declared = set(re.findall(r'p\("(\w+)"', source))
        unknown = set(section["ros__parameters"]) - declared
        assert not unknown, f"{name} does not declare {sorted(unknown)}"
