"""The default agent host for agent_node: omni_agent's Agent with the configured brain.

Kept apart from agent_node so the node stays importable (and testable with other hosts)
while the agent core evolves; this is the one place that knows the Agent's constructor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_agent.config import load_config
from omni_agent.errors import UserError
from omni_agent.site import SiteError, load_site
from omni_agent.transport import Bus
from ros_nodes.robot import RosRobot
from ros_nodes.runtime import NodeExit

if TYPE_CHECKING:
    from ros_nodes.agent_node import AgentNode


def site_map(world: str) -> Any:
    """The site's map (places, landmarks, rooms, keep-out zones), or None."""
    if not world:
        return None
    try:
        return load_site(world).site_map()
    except SiteError as exc:
        raise NodeExit(f"agent_node: {exc}") from None


async def run_agent(bus: Bus, robot: RosRobot, node: AgentNode) -> None:
    """The agent on the configured brain.

    speech "text": /user/utterance in, /speech/text out (no speech models needed);
    speech "voice": also VAD + Whisper ASR on /audio/mic and TTS onto /speech/audio.
    """
    try:
        from omni_agent.agent import Agent
        from omni_agent.brain import open_brain
    except ImportError as exc:
        raise NodeExit(f"agent_node: the agent core is not available ({exc})") from None
    config = load_config(Path(node.config_file) if node.config_file else None)
    site = site_map(node.world)
    try:
        robot.configure(config.safety, site)  # motion model and envelope, as the agent's
    except UserError as exc:
        raise NodeExit(f"agent_node: {exc}") from None
    robot.places.update(config.robot.places)
    if site is not None:
        robot.places.update(site.landmarks)
        robot.places.update(site.places)
    async with contextlib.AsyncExitStack() as stack:
        extra: dict[str, Any] = {}
        if node.speech == "voice":
            speaker = node.open_speaker_id(config.memory.path)  # None unless speaker_id:=true
            extra["speech"] = await stack.enter_async_context(_voice(bus, speaker))
        elif node.speech != "text":
            raise NodeExit(f"agent_node: speech must be 'text' or 'voice', not {node.speech!r}")
        brain = await stack.enter_async_context(open_brain(config))
        live = node.open_live_view(site)  # None unless the live_view parameter is set
        agent = Agent(
            config, bus, robot, brain.client, brain.profile, site=site, on_event=live, **extra
        )
        await agent.run()


@contextlib.asynccontextmanager
async def _voice(bus: Bus, speaker: Any = None) -> AsyncIterator[Any]:
    """Listener (VAD + ASR, and speaker identification if given) on the mic and a TTS
    output onto /speech/audio."""
    from omni_agent.speech.asr import WhisperAsr
    from omni_agent.speech.listener import Listener
    from omni_agent.speech.models import ModelMissingError
    from omni_agent.speech.outputs import TtsSpeechOutput
    from omni_agent.speech.sinks import TopicSink

    try:
        listener = Listener(bus, asr=WhisperAsr(), speaker=speaker)
        output = TtsSpeechOutput([TopicSink(bus)], bus=bus)
    except ModelMissingError as exc:
        raise NodeExit(f"agent_node: speech 'voice' needs the speech models: {exc}") from None
    listener.start()
    try:
        yield output
    finally:
        await output.close()
        await listener.close()
