"""Agent host for the ROS tests: the real Agent, fed by test ears, on a scripted model.

agent_node loads this file (`-p agent:=.../scripted_host.py:run`). The model is
`ScriptedModel`, an in-process OpenAI-compatible test double (an httpx transport) that
streams a fixed JSON reply at once, so a turn takes milliseconds. The ears endpoint the
microphone audio with the real VAD Endpointer and stand in for ASR with a fixed
transcript that names the last camera frame seen, so the reply proves that both audio
and camera crossed ROS into the agent.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx

from omni_agent.agent import Agent
from omni_agent.config import load_config
from omni_agent.messages import ImageFrame, UserUtterance
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.speech.vad import Endpointer, SpeechEnded
from omni_agent.transport import CAMERA, MIC, USER_TEXT, Bus

REPLY_ENV = "OMNI_TEST_MOVE_S"
READY_TOPIC = "/test/agent_ready"
"""Latched std_msgs/String: "ready" once the agent has subscribed to its Bus and can take
input, then "localized" once the robot has its first map-frame pose."""
CAMERA_TAG = re.compile(r"camera \d+x\d+")


class ScriptedModel(httpx.AsyncBaseTransport):
    """Test double of an OpenAI-compatible chat server: instant, scripted, streaming."""

    def __init__(self, move_s: float) -> None:
        self.move_s = move_s
        self.requests: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "scripted"}]})
        body = json.loads(request.content)
        self.requests.append(body)
        seen = CAMERA_TAG.findall(json.dumps(body))
        reply = {
            "say": f"Driving forward, I saw {seen[-1] if seen else 'nothing'}.",
            "actions": [{"skill": "move", "linear": 0.2, "angular": 0.0, "duration": self.move_s}],
        }
        text = json.dumps(reply)
        events = [
            {"choices": [{"index": 0, "delta": {"content": text[i : i + 16]}}]}
            for i in range(0, len(text), 16)
        ]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=sse.encode()
        )


async def ears(bus: Bus) -> None:
    """VAD-endpointed mic audio -> UserUtterance with a transcript naming the last frame."""
    endpointer = Endpointer()
    frames = bus.subscribe(CAMERA)
    last: ImageFrame | None = None
    async for chunk in bus.subscribe(MIC):
        while (frame := frames.get_nowait()) is not None:
            last = frame
        for event in endpointer.feed(chunk.pcm, chunk.stamp):
            if isinstance(event, SpeechEnded) and event.is_speech:
                seen = f"camera {last.width}x{last.height}" if last else "no camera"
                bus.publish(
                    USER_TEXT,
                    UserUtterance(
                        text=f"please drive forward ({seen})",
                        keyframes=[last] if last else [],
                        speech_end=event.end,
                    ),
                )


async def run(bus: Bus, robot: Any, node: Any) -> None:
    import asyncio

    config = load_config(Path(node.config_file) if node.config_file else None, environ={})
    robot.configure(config.safety)  # the envelope the robot checks again before moving
    model = ScriptedModel(float(os.environ.get(REPLY_ENV, "0.6")))
    client = ModelClient("http://scripted.test/v1", config.model, transport=model)
    live = node.open_live_view()  # None unless agent_node has live_view:=true
    agent = Agent(config, bus, robot, client, get_profile("llama-cpp"), on_event=live)
    try:
        await asyncio.gather(agent.run(), ears(bus), _announce(agent, robot, node))
    finally:
        await client.aclose()


async def _announce(agent: Agent, robot: Any, node: Any) -> None:
    """Tell the test probe (latched) once the agent listens, and once the robot is
    localized: agent_node matches on ROS before its host starts, and refuses motion
    before the localizer's first pose, so a probe waits for these before its input."""
    import asyncio

    from std_msgs.msg import String

    from ros_nodes import qos

    await agent.ready.wait()
    status = node.create_publisher(String, READY_TOPIC, qos.LATCHED)
    status.publish(String(data="ready"))
    node.get_logger().info("scripted agent ready")
    while not robot.localized:  # set from the ROS executor's thread: polled
        await asyncio.sleep(0.05)
    status.publish(String(data="localized"))
