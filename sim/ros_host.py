"""agent_node's host for the scenario library through ROS: the product on the instant brain.

The library's `--via ros` runs (sim/ros_library.py) start agent_node with
`agent:=sim.ros_host:run`: the same assembly as a robot (ros_nodes.agent_host, long-term
memory in the node's memory_db), with the rule-based instant brain in place of a model
server, so an episode through ROS answers as the in-process one does.

The agent's own start announcement (its state on /agent/state) says it listens; a
scenario's first line may ask it to drive at once, so the harness waits for more: READY
(latched, this process's pid, so a restarted node is told from the one before) once the
agent listens, the robot is localized and action_node's gate has matched the agent's
motion publishers (a goal sent before that match is lost).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

from omni_agent.messages import StateChange
from omni_agent.transport import STATE, Bus, Subscription
from ros_nodes.agent_host import node_config, run_agent
from ros_nodes.robot import RosRobot
from sim.instant_brain import instant_brain

if TYPE_CHECKING:
    from ros_nodes.agent_node import AgentNode

READY = "/sim/agent_ready"
"""std_msgs/String, latched: the agent_node process's pid once it can take a line."""
MATCH_TIMEOUT_S = 120.0


async def run(bus: Bus, robot: RosRobot, node: AgentNode) -> None:
    states = bus.subscribe(STATE)  # before the agent starts: its announcement is not missed
    async with instant_brain(node_config(node)) as brain:
        await asyncio.gather(
            run_agent(bus, robot, node, brain=brain), _announce(states, robot, node)
        )


async def _announce(states: Subscription[StateChange], robot: RosRobot, node: AgentNode) -> None:
    from std_msgs.msg import String

    from ros_nodes import qos

    async for _ in states:
        break  # the agent listens
    deadline = time.monotonic() + MATCH_TIMEOUT_S
    # set from the ROS executor's thread: polled, as the matching is
    while not (
        robot.localized
        and node.goal_pub.get_subscription_count() > 0
        and node.cmd_pub.get_subscription_count() > 0
    ):
        if time.monotonic() > deadline:
            node.get_logger().error("no localization or no action_node gate: not announced")
            return
        await asyncio.sleep(0.05)
    ready = node.create_publisher(String, READY, qos.LATCHED)
    ready.publish(String(data=str(os.getpid())))
