"""The simulated episode in Foxglove: `omni-agent sim --live`, and the Foxglove channels
of `--record`.

The core LiveView knows the agent, the bus and a site map; this adds what only the sim
knows (walls, people, objects, the simulated clock) once the runner hands over the robot.
"""

from __future__ import annotations

from pathlib import Path

from omni_agent.events import AgentEvent
from omni_agent.live import LiveView, MapView
from sim.clock import SimClock
from sim.render import COLOURS, DEFAULT_OBJECT
from sim.robot import SimRobot

RECORD_CAMERA_PERIOD_S = 0.5
"""Camera frames in a recording: two per simulated second, as the rosbag2 recording."""


class SimLiveView:
    """An EpisodeWatcher that shows one episode on a LiveView (served, recorded, or both)."""

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.robot: SimRobot | None = None

    @classmethod
    def recording(cls, path: Path) -> SimLiveView:
        """The episode's Foxglove channels into an MCAP file, no server."""
        return cls(LiveView(serve=False, mcap=path, camera_period_s=RECORD_CAMERA_PERIOD_S))

    def attach(self, robot: SimRobot, clock: SimClock) -> None:
        self.robot = robot
        self.view.clock = clock.wall_time
        world = robot.world
        self.view.set_map(
            MapView(
                site=world.site_map(),
                walls=list(world.walls),
                people={p.name: world.places[p.place] for p in world.people},
                objects={
                    o.label: (world.places[o.place], COLOURS.get(o.colour.lower(), DEFAULT_OBJECT))
                    for o in world.objects
                },
            )
        )
        self.view.pose(robot.pose, [pose for _, pose in robot.trail])
        self.view.follow(robot.bus)

    def __call__(self, event: AgentEvent) -> None:
        self.view(event)
        if self.robot is not None:
            self.view.pose(self.robot.pose, [pose for _, pose in self.robot.trail])

    def close(self) -> Path | None:
        return self.view.close()
