"""The site map is the runtime's: one loader, one shipped file, and the simulator's world
is that site plus the robot's start."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from omni_agent.messages import Pose2D
from omni_agent.site import DEFAULT_SITE, SiteError, load_site
from sim.world import DEFAULT_WORLD, World, WorldError


def test_default_site_ships_with_the_runtime() -> None:
    assert DEFAULT_SITE.is_relative_to(Path(load_site.__code__.co_filename).parent)
    site = load_site("default")
    assert {"kitchen", "charging dock", "stairs"} <= set(site.places)
    assert [z.name for z in site.keepout] == ["stairs"]
    marks = site.site_map().landmarks
    assert marks["red cup"] == marks["cup"] == site.places["kitchen table"]
    assert marks["Alice"] == site.places["living room"]


def test_sim_world_is_the_site_plus_the_robot_start() -> None:
    site, world = load_site(), World.load()
    assert "site: default" in DEFAULT_WORLD.read_text()
    assert world.rooms == site.rooms and world.places == site.places
    assert world.keepout == site.keepout and world.landmarks == site.landmarks
    a, b = site.site_map(), world.site_map()
    assert (a.places, a.landmarks, a.geofence, a.keepout) == (
        b.places,
        b.landmarks,
        b.geofence,
        b.keepout,
    )
    start, goal = site.places["charging dock"], site.places["kitchen"]
    assert a.route is not None and b.route is not None
    assert a.route(start, goal, 0.2) == b.route(start, goal, 0.2)


def test_world_can_name_its_own_site_and_override_fields(tmp_path: Path) -> None:
    site = yaml.safe_load(DEFAULT_SITE.read_text())
    site["name"] = "flat"
    (tmp_path / "flat.yaml").write_text(yaml.safe_dump(site))
    (tmp_path / "w.yaml").write_text("site: flat.yaml\nrobot_start: kitchen\nkeepout: []\n")
    world = World.load(tmp_path / "w.yaml")
    assert world.name == "flat" and world.keepout == []
    assert world.route(world.places["hallway"], Pose2D(x=6.0, y=-1.0)) is not None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (None, "site file not found"),
        (b"rooms: [\n", "not valid YAML (line"),
        (b"- just\n- a list\n", "expected a mapping"),
        (b"\xff\xfe", "cannot read"),
        (b"rooms: []\nplaces: {}\nrobot: 1\n", "robot: Extra inputs are not permitted"),
        (b"site: default\nrobot_start: sofa\n", "a sim world, not a site: give its site (default)"),
        (
            b"rooms: []\nplaces: {}\nlandmarks: [{name: cup, place: moon}]\n",
            "unknown place 'moon'",
        ),
    ],
)
def test_bad_site_file_is_one_line(tmp_path: Path, body: bytes | None, says: str) -> None:
    path = tmp_path / "site.yaml"
    if body is not None:
        path.write_bytes(body)
    with pytest.raises(SiteError) as err:
        load_site(path)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_bad_world_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text("site: default\nrobot_start: moon\n")
    with pytest.raises(WorldError, match="robot_start 'moon' is not a place"):
        World.load(tmp_path / "w.yaml")
    (tmp_path / "w.yaml").write_text("site: missing.yaml\nrobot_start: sofa\n")
    with pytest.raises(WorldError, match="site file not found"):
        World.load(tmp_path / "w.yaml")
