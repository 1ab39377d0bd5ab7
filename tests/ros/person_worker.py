"""Runs inside the private network namespace: agent_node's /person/identified topic.

Usage (from tests/ros/test_ros_person.py only): python person_worker.py
An in-process agent_node with speaker identification (the real encoder) hears names from
a probe node on /person/identified; prints one JSON object on the last stdout line.
Waits are on events (subscription matching, the node counting a message), never sleeps.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from memory.voiceprints import VoiceprintStore
from omni_agent.speech.speaker import SpeakerId, VoiceEncoder
from ros_nodes import qos
from ros_nodes.agent_node import AgentNode
from ros_nodes.sandbox import assert_sandboxed

NAMES = ["\x00shared", '{"person": "Al\\u0007ice", "confidence": 0.9}', "Bo\x1bb", "Dora"]
"""A NUL ends a ROS string: "\x00shared" arrives as an empty name."""


def main() -> int:
    assert_sandboxed()
    rclpy.init()
    node = AgentNode()
    probe = Node("person_probe")
    pub = probe.create_publisher(String, "/person/identified", qos.COMMAND)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(probe)
    with tempfile.TemporaryDirectory() as tmp:
        node.speaker = SpeakerId(VoiceprintStore(Path(tmp) / "v.db"), VoiceEncoder())
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        seen = []
        for name in NAMES:
            before = (node.dropped, node.speaker._face)
            pub.publish(String(data=name))
            deadline = time.monotonic() + 30
            while (node.dropped, node.speaker._face) == before and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
            heard = node.speaker.match(np.zeros(256, np.float32))
            seen.append([heard.person, heard.source])
        result = {"dropped": node.dropped, "seen": seen}
        node.speaker.store.close()
    executor.shutdown()
    node.destroy_node()
    probe.destroy_node()
    rclpy.shutdown()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
