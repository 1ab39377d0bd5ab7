"""Draws docs/images/live-episode.png: one moment of a real simulated episode, from the
Foxglove channels its recording carries (the map SceneUpdate, the camera RawImage and
the transcript), so the README shows what the live view streams without a browser.

    PYTHONPATH=. python docs/screenshot.py [scenario.yaml] [out.png]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from matplotlib.patches import Circle, Rectangle
from mcap.reader import make_reader

from omni_agent.config import Config
from sim.instant_brain import instant_brain
from sim.library import run_scenario
from sim.live import SimLiveView
from sim.scenario import SCENARIOS_DIR, Scenario

LINE_LIST = 2  # foxglove.LinePrimitive.Type


async def record(scenario: Scenario, out: Path) -> Path:
    path = out / "episode.mcap"
    view = SimLiveView.recording(path)
    async with instant_brain(Config()) as brain:
        await run_scenario(Config(), scenario, brain, out, sinks=[view])
    view.close()
    return path


def read(path: Path) -> dict[str, list[Any]]:
    """Each protobuf channel's messages, decoded with the schema stored in the recording."""
    got: dict[str, list[Any]] = {}
    with path.open("rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            if schema is None or schema.encoding != "protobuf":
                continue
            files = descriptor_pb2.FileDescriptorSet.FromString(schema.data)
            pool = descriptor_pool.DescriptorPool()
            for file in files.file:
                pool.Add(file)
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name))
            got.setdefault(channel.topic, []).append(cls.FromString(message.data))
    return got


def rgb(c: Any) -> tuple[float, float, float, float]:
    return (c.r, c.g, c.b, c.a)


def draw_scene(ax: Any, scene: Any) -> None:
    for e in scene.entities:
        for cube in e.cubes:
            p, s = cube.pose.position, cube.size
            ax.add_patch(Rectangle((p.x - s.x / 2, p.y - s.y / 2), s.x, s.y, color=rgb(cube.color)))
        for line in e.lines:
            xs, ys = [q.x for q in line.points], [q.y for q in line.points]
            if line.type == LINE_LIST:
                for i in range(0, len(xs) - 1, 2):
                    ax.plot(xs[i : i + 2], ys[i : i + 2], color=rgb(line.color), lw=2.5)
            else:
                ax.plot(xs, ys, color=rgb(line.color), lw=1.5)
        for sphere in e.spheres:
            p = sphere.pose.position
            ax.add_patch(Circle((p.x, p.y), sphere.size.x / 2, color=rgb(sphere.color)))
        for arrow in e.arrows:
            p, q = arrow.pose.position, arrow.pose.orientation
            yaw = 2 * np.arctan2(q.z, q.w)
            ax.arrow(p.x, p.y, 0.6 * np.cos(yaw), 0.6 * np.sin(yaw), head_width=0.25,
                     color=rgb(arrow.color))  # fmt: skip
        for text in e.texts:
            p = text.pose.position
            ax.text(p.x, p.y, text.text, fontsize=7, color=rgb(text.color), ha="center")
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xticks([])
    ax.set_yticks([])


def main() -> None:
    scenario_path = Path(sys.argv[1]) if len(sys.argv) > 1 else SCENARIOS_DIR / "navigation.yaml"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/images/live-episode.png")
    scenario = Scenario.load(scenario_path)
    with tempfile.TemporaryDirectory() as tmp:
        got = read(asyncio.run(record(scenario, Path(tmp))))
    fig = plt.figure(figsize=(11, 6), dpi=90)
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1.3], width_ratios=[1.4, 1])
    draw_scene(fig.add_subplot(grid[0, 0]), got["/map/scene"][-1])
    fig.axes[0].set_title("/map/scene (SceneUpdate): rooms, walls, places, people, path, robot")
    cam = got["/camera/image"][-1]
    image = np.frombuffer(cam.data, np.uint8).reshape(cam.height, cam.width, 3)
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(image)
    ax.set_title(f"/camera/image (RawImage {cam.width}x{cam.height})")
    ax.axis("off")
    said = [f"{m.name}: {m.message}" for m in got["/transcript"] if m.name not in ("note",)]
    ax = fig.add_subplot(grid[1, :])
    ax.axis("off")
    ax.set_title("/transcript (Log)", loc="left")
    ax.text(0, 1, "\n".join(said[-6:]), va="top", family="monospace", fontsize=8)
    fig.suptitle(f"omni-agent sim --live: scenario {scenario.name}, as recorded")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(out)


if __name__ == "__main__":
    main()
