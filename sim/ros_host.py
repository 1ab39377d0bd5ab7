"""agent_node's host for the scenario library through ROS: the product on the instant brain.

The library's `--via ros` runs (sim/ros_library.py) start agent_node with
`agent:=sim.ros_host:run`: the same assembly as a robot (ros_nodes.agent_host, long-term
memory in the node's memory_db), with the rule-based instant brain in place of a model
server, so an episode through ROS answers as the in-process one does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omni_agent.transport import Bus
from ros_nodes.agent_host import node_config, run_agent
from ros_nodes.robot import RosRobot
from sim.instant_brain import instant_brain

if TYPE_CHECKING:
    from ros_nodes.agent_node import AgentNode


async def run(bus: Bus, robot: RosRobot, node: AgentNode) -> None:
    async with instant_brain(node_config(node)) as brain:
        await run_agent(bus, robot, node, brain=brain)
