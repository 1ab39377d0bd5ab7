"""`omni-agent sim --view`: a GIF of the episode on the map.

An event sink that notes, for every person's line, robot reply and action, the simulated
time and the robot's pose; `write` draws one frame per noted event with matplotlib (rooms,
walls, doors, keep-out zones, objects, people, the robot's path so far and its pose, the
latest caption and action) and saves the GIF with pillow.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni_agent.events import AgentEvent
from sim.clock import SimClock
from sim.render import COLOURS, DEFAULT_OBJECT, PERSON
from sim.robot import SimRobot

KINDS = ("user", "robot", "action", "rejected", "sim")
MAX_FRAMES = 400


@dataclass
class Moment:
    t: float
    kind: str
    text: str
    trail_len: int


class EpisodeView:
    """Attached to the episode's robot by the runner (an EpisodeWatcher) before any event."""

    def __init__(self, path: Path, title: str = "") -> None:
        self.path = path
        self.title = title
        self.moments: list[Moment] = []

    def attach(self, robot: SimRobot, clock: SimClock) -> None:
        self.robot = robot
        self.moments.append(Moment(clock.t, "sim", "start", len(robot.trail)))

    def __call__(self, event: AgentEvent) -> None:
        if event.kind not in KINDS:
            return
        self.moments.append(
            Moment(self.robot._now(), event.kind, _caption(event), len(self.robot.trail))
        )

    def close(self) -> Path:
        return self.write()

    def write(self, frame_ms: int = 900) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from PIL import Image

        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=80)
        frames: list[Image.Image] = []
        said, robot_said, did = "", "", ""
        for m in self.moments[:MAX_FRAMES]:
            if m.kind == "user":
                said = m.text
            elif m.kind == "robot":
                robot_said = m.text
            elif m.kind in ("action", "rejected"):
                did = m.text
            ax.clear()
            self._draw(ax, m, [said, robot_said, did])
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            buf.seek(0)
            frames.append(Image.open(buf).convert("P", palette=Image.Palette.ADAPTIVE))
        plt.close(fig)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frames[0].save(
            self.path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0
        )
        return self.path

    def _draw(self, ax: Any, m: Moment, captions: list[str]) -> None:
        from matplotlib.patches import Rectangle

        world = self.robot.world
        for room in world.rooms:
            ax.add_patch(
                Rectangle(
                    (room.x_min, room.y_min), room.x_max - room.x_min, room.y_max - room.y_min,
                    facecolor="#f4efe6", edgecolor="none",
                )
            )  # fmt: skip
            ax.text((room.x_min + room.x_max) / 2, room.y_max - 0.3, room.name,
                    ha="center", fontsize=7, color="#777")  # fmt: skip
        for zone in world.keepout:
            ax.add_patch(
                Rectangle(
                    (zone.x_min, zone.y_min), zone.x_max - zone.x_min, zone.y_max - zone.y_min,
                    facecolor="#f3b6b6", edgecolor="none", hatch="//", alpha=0.6,
                )
            )  # fmt: skip
        for x1, y1, x2, y2 in world.walls:
            ax.plot([x1, x2], [y1, y2], color="#333", linewidth=2.5)
        for door in world.doors:
            ax.plot(door.x, door.y, marker="s", color="#8a6", markersize=4)
        for obj in world.objects:
            where = world.places[obj.place]
            rgb = COLOURS.get(obj.colour.lower(), DEFAULT_OBJECT)
            ax.plot(where.x, where.y, marker="s", markersize=8,
                    color=[c / 255 for c in rgb], markeredgecolor="k")  # fmt: skip
            ax.text(where.x + 0.15, where.y - 0.3, obj.label, fontsize=6)
        for person in world.people:
            where = world.places[person.place]
            ax.plot(where.x, where.y, marker="o", markersize=10,
                    color=[c / 255 for c in PERSON], markeredgecolor="k")  # fmt: skip
            ax.text(where.x + 0.2, where.y + 0.2, person.name, fontsize=7, weight="bold")
        trail = self.robot.trail[: m.trail_len]
        ax.plot([p.x for _, p in trail], [p.y for _, p in trail], color="#36c", linewidth=1.2)
        pose = trail[-1][1]
        ax.plot(pose.x, pose.y, marker="o", markersize=9, color="#36c")
        ax.arrow(pose.x, pose.y, 0.5 * math.cos(pose.yaw), 0.5 * math.sin(pose.yaw),
                 head_width=0.2, color="#36c")  # fmt: skip
        xs = [r.x_min for r in world.rooms] + [r.x_max for r in world.rooms]
        ys = [r.y_min for r in world.rooms] + [r.y_max for r in world.rooms]
        ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
        ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{self.title}  t={m.t:.1f} s", fontsize=9)
        labels = ["person: ", "robot: ", "action: "]
        text = "\n".join(f"{lab}{_short(c)}" for lab, c in zip(labels, captions, strict=True))
        ax.set_xlabel(text, fontsize=7, loc="left")


def _caption(event: AgentEvent) -> str:
    d = event.data
    if event.kind == "user":
        return f"{d.get('person') or ''}: {d.get('text', '')}".strip(": ")
    if event.kind == "rejected":
        return f"REJECTED {d.get('skill', '')}: {d.get('reason', '')}"
    if event.kind == "action":
        action = d.get("action", {})
        name = action.get("skill") or action.get("type") or action
        return f"{name} ({'ok' if d.get('ok') else 'failed'}: {d.get('detail', '')})"
    return str(d.get("text", ""))


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
