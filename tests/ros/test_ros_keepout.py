"""Keep-out zones reach Nav2: the shipped keepout filter mask and costmap filter params
are generated from the site's zones, current, and mark what the envelope forbids."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from omni_agent.config import SafetyConfig
from omni_agent.kinematics import Kinematics
from omni_agent.safety import site_zones
from ros_nodes.keepout import LETHAL, main, site_for
from tests.ros.test_ros_launch import load_launch

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


def read_mask(folder: Path) -> tuple[dict[str, object], bytes, int, int]:
    meta = yaml.safe_load((folder / "keepout_mask.yaml").read_text())
    raw = (folder / str(meta["image"])).read_bytes()
    magic, size, depth, pixels = raw.split(b"\n", 3)
    assert magic == b"P5" and depth == b"255"
    width, height = map(int, size.split())
    assert len(pixels) == width * height
    return meta, pixels, width, height


def test_the_shipped_mask_and_params_are_generated_from_the_current_zones(
    tmp_path: Path,
) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    for name in ("keepout_mask.pgm", "keepout_mask.yaml", "nav2_keepout_params.yaml"):
        assert (tmp_path / name).read_bytes() == (LAUNCH / name).read_bytes(), (
            f"launch/{name} is stale: run python -m ros_nodes.keepout"
        )


def test_the_mask_is_lethal_where_the_footprint_would_touch_a_zone() -> None:
    meta, pixels, width, height = read_mask(LAUNCH)
    res = float(meta["resolution"])  # type: ignore[arg-type]
    x0, y0, _ = meta["origin"]  # type: ignore[misc]

    def lethal(x: float, y: float) -> bool:
        col, row = int((x - x0) / res), int((y - y0) / res)
        return pixels[(height - 1 - row) * width + col] == LETHAL

    assert lethal(6.0, -0.5)  # on the stairs
    assert lethal(6.0, 1.1)  # the footprint would overhang them
    assert lethal(-0.3, 2.0)  # outside the rooms
    assert not lethal(6.0, 2.0)  # the hallway
    assert not lethal(2.5, 2.0)  # the living room
    # agrees with the envelope away from the edge (the mask errs by up to a cell, lethal)
    zones = site_zones(SafetyConfig(), site_for("default"))
    clearance = Kinematics().clearance
    for x, y in ((0.1, 0.1), (0.6, 0.6), (9.5, 2.6), (7.0, 5.0), (4.9, 1.0)):
        assert lethal(x, y) == (zones.point_breach(x, y, clearance) is not None)


def test_nav2_params_wire_the_keepout_filter_into_both_costmaps() -> None:
    params = yaml.safe_load((LAUNCH / "nav2_keepout_params.yaml").read_text())
    info = params["costmap_filter_info_server"]["ros__parameters"]
    mask = params["filter_mask_server"]["ros__parameters"]
    assert info["type"] == 0 and info["mask_topic"] == mask["topic_name"]
    for costmap in ("global_costmap", "local_costmap"):
        p = params[costmap][costmap]["ros__parameters"]
        assert p["filters"] == ["keepout_filter"]
        assert p["keepout_filter"]["plugin"] == "nav2_costmap_2d::KeepoutFilter"
        assert p["keepout_filter"]["filter_info_topic"] == info["filter_info_topic"]


def test_the_keepout_launch_file_starts_both_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    actions = load_launch(LAUNCH / "nav2_keepout.launch.py", monkeypatch)
    names = [a.kwargs["name"] for a in actions if type(a).__name__ == "Node"]
    assert names[:2] == ["filter_mask_server", "costmap_filter_info_server"]
    declared = [a for a in actions if type(a).__name__ == "DeclareLaunchArgument"]
    assert Path(declared[0].kwargs["default_value"]).exists()


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--world", "/nonexistent.yaml"]) == 2
    assert main(["--resolution", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert all(line.startswith("python -m ros_nodes.keepout: error:") for line in err)
