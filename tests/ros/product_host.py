"""Agent host for the product tests: agent_node's own default host, model doubled only.

agent_node loads this file (`-p agent:=.../product_host.py:run`). Everything but the
model is what a robot runs (ros_nodes.agent_host.run_agent: long-term memory from the
node's parameters, speech, speaker id). The model is the instant brain's rules behind
ScriptedBackend, or behind the omni double (it hears the request's audio with whisper and
speaks with piper) when OMNI_TEST_BRAIN=omni-double. Every request the model receives is
appended as one JSON line to the file named by OMNI_TEST_REQUESTS, for the test to read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omni_agent.brain import Brain
from omni_agent.config import load_config
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.transport import Bus
from ros_nodes.agent_host import run_agent
from sim.brains.scripted import ScriptedBackend, ScriptedReply
from sim.instant_brain import OMNI_DOUBLE_PROFILE, respond

REQUESTS_ENV = "OMNI_TEST_REQUESTS"
BRAIN_ENV = "OMNI_TEST_BRAIN"


async def run(bus: Bus, robot: Any, node: Any) -> None:
    log = Path(os.environ[REQUESTS_ENV])

    def logged(body: dict[str, Any]) -> ScriptedReply:
        with log.open("a") as fh:
            fh.write(json.dumps(body) + "\n")
        return respond(body)

    backend: ScriptedBackend
    if os.environ.get(BRAIN_ENV) == "omni-double":
        from sim.brains.omni_double import OmniDouble

        backend, profile = OmniDouble(logged), get_profile(OMNI_DOUBLE_PROFILE)
    else:
        backend, profile = ScriptedBackend(logged), get_profile("llama-cpp")
    config = load_config(environ={})
    client = ModelClient("http://model.test/v1", config.model, transport=backend)
    try:
        await run_agent(bus, robot, node, brain=Brain(client, profile, "test double"))
    finally:
        await client.aclose()
