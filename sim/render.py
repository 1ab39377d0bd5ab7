"""A deterministic first-person RGB camera for the simulated robot.

A column renderer: one ray per image column against the world's walls (shaded by
distance, walls facing east-west darker than north-south ones), a floor and a ceiling,
and the objects and people in the robot's room drawn as upright blocks in their colour
(people in a distinct skin-and-shirt colour), hidden behind nearer walls. Pure numpy; the
same world and pose give the same bytes.
"""

from __future__ import annotations

import math

import numpy as np

from omni_agent.messages import Pose2D
from sim.world import World

FOV_DEG = 70.0
CAMERA_HEIGHT_M = 0.5
WALL_HEIGHT_M = 2.4
MAX_RANGE_M = 30.0
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 30),
    "green": (40, 160, 60),
    "blue": (40, 70, 200),
    "yellow": (230, 200, 40),
    "orange": (240, 140, 30),
    "purple": (130, 50, 160),
    "pink": (240, 130, 180),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "brown": (120, 80, 40),
}
DEFAULT_OBJECT = (160, 120, 200)
PERSON = (250, 110, 20)
SKY = (205, 210, 220)
FLOOR = (110, 95, 80)
WALL = np.array([225, 215, 190], dtype=np.float32)
OBJECT_SIZE = (0.3, 0.35)
"""Width and height of an object block, m (people: 0.5 x 1.7)."""


def render(world: World, pose: Pose2D, width: int = 160, height: int = 120) -> np.ndarray:
    """What the camera at `pose` sees: an (height, width, 3) uint8 RGB image."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    horizon = height // 2
    img[:horizon] = SKY
    img[horizon:] = FLOOR
    focal = (width / 2) / math.tan(math.radians(FOV_DEG) / 2)
    # column angles relative to the heading (left of the image = left of the robot)
    offsets = np.arctan((width / 2 - 0.5 - np.arange(width)) / focal)
    angles = pose.yaw + offsets
    dx, dy = np.cos(angles), np.sin(angles)
    depth, facing = _cast(world, pose.x, pose.y, dx, dy)
    perp = np.maximum(depth * np.cos(offsets), 1e-3)  # no fish-eye
    rows = np.arange(height)[:, None]
    top = horizon - focal * (WALL_HEIGHT_M - CAMERA_HEIGHT_M) / perp
    bottom = horizon + focal * CAMERA_HEIGHT_M / perp
    hit = np.isfinite(depth)
    mask = (rows >= top[None, :]) & (rows < bottom[None, :]) & hit[None, :]
    shade = np.clip(1.0 - perp / 12.0, 0.25, 1.0) * np.where(facing, 0.75, 1.0)
    wall_rgb = (WALL[None, :] * shade[:, None]).astype(np.uint8)  # (width, 3)
    img[mask] = np.broadcast_to(wall_rgb[None, :, :], (height, width, 3))[mask]
    _draw_things(world, pose, img, focal, horizon, offsets, perp)
    return img


def _cast(
    world: World, x: float, y: float, dx: np.ndarray, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to the nearest wall (inf: none) and whether it runs N-S."""
    walls = np.asarray(world.walls, dtype=np.float64)  # (n, 4)
    if walls.size == 0:
        return np.full(dx.shape, np.inf), np.zeros(dx.shape, dtype=bool)
    x3, y3, x4, y4 = (walls[:, i][None, :] for i in range(4))
    ex, ey = x4 - x3, y4 - y3
    rx, ry = dx[:, None], dy[:, None]
    denom = rx * ey - ry * ex
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((x3 - x) * ey - (y3 - y) * ex) / denom
        u = ((x3 - x) * ry - (y3 - y) * rx) / denom
    valid = (np.abs(denom) > 1e-12) & (t > 1e-6) & (u >= 0.0) & (u <= 1.0) & (t < MAX_RANGE_M)
    t = np.where(valid, t, np.inf)
    nearest = np.argmin(t, axis=1)
    depth = t[np.arange(len(dx)), nearest]
    facing = (np.abs(ex[0, nearest]) < 1e-9) & np.isfinite(depth)
    return depth, facing


def _draw_things(
    world: World,
    pose: Pose2D,
    img: np.ndarray,
    focal: float,
    horizon: int,
    offsets: np.ndarray,
    perp: np.ndarray,
) -> None:
    height, width, _ = img.shape
    things: list[tuple[float, Pose2D, tuple[int, int, int], float, float]] = []
    for obj in world.objects:
        where = world.places[obj.place]
        colour = COLOURS.get(obj.colour.lower(), DEFAULT_OBJECT)
        things.append((pose.distance_to(where), where, colour, *OBJECT_SIZE))
    for person in world.people:
        where = world.places[person.place]
        things.append((pose.distance_to(where), where, PERSON, 0.5, 1.7))
    half_fov = math.radians(FOV_DEG) / 2 + 0.3
    for _dist, where, colour, size_w, size_h in sorted(things, key=lambda t: -t[0]):
        rel = math.atan2(where.y - pose.y, where.x - pose.x) - pose.yaw
        rel = (rel + math.pi) % (2 * math.pi) - math.pi
        forward = _dist * math.cos(rel)
        if abs(rel) > half_fov or forward < 0.2:
            continue
        centre = width / 2 - 0.5 - focal * math.tan(rel)
        half_w = focal * size_w / 2 / forward
        c0, c1 = max(0, int(centre - half_w)), min(width, int(centre + half_w) + 1)
        if c0 >= c1:
            continue
        r1 = min(height, int(horizon + focal * CAMERA_HEIGHT_M / forward))
        r0 = max(0, int(horizon + focal * (CAMERA_HEIGHT_M - size_h) / forward))
        if r0 >= r1:
            continue
        cols = np.arange(c0, c1)
        visible = cols[perp[cols] > forward]  # not behind a nearer wall
        if visible.size:
            img[r0:r1, visible] = colour
