"""The default agent host for agent_node: the whole product, assembled by omni_agent.runtime.

Kept apart from agent_node so the node stays importable (and testable with other hosts)
while the agent core evolves. The node brings its bus, its robot and its ROS parameters;
everything else (brain, long-term memory, speech, speaker id) is what `open_runtime`
builds for the simulator too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_agent.config import Config, load_config
from omni_agent.errors import UserError
from omni_agent.events import EventFanout, EventSink
from omni_agent.messages import StateChange
from omni_agent.site import SiteError, load_site
from omni_agent.transport import STATE, Bus
from ros_nodes.robot import RosRobot
from ros_nodes.runtime import NodeExit

if TYPE_CHECKING:
    from omni_agent.agent import Agent
    from omni_agent.brain import Brain
    from ros_nodes.agent_node import AgentNode


def site_map(world: str) -> Any:
    """The site's map (places, landmarks, rooms, keep-out zones), or None."""
    if not world:
        return None
    try:
        return load_site(world).site_map()
    except SiteError as exc:
        raise NodeExit(f"agent_node: {exc}") from None


def node_config(node: AgentNode) -> Config:
    """The config file's settings, with the node's memory parameters over them (an empty
    parameter keeps the file's value)."""
    config = load_config(Path(node.config_file) if node.config_file else None)
    update: dict[str, Any] = {}
    if node.memory_db:
        update["path"] = Path(node.memory_db)
    if node.memory_url:
        update["url"] = node.memory_url
    if update:
        try:
            config.memory = config.memory.model_validate({**config.memory.model_dump(), **update})
        except ValueError:  # pydantic's ValidationError: only the URL has a pattern
            raise NodeExit(
                f"agent_node: memory_url {node.memory_url!r} is not a postgresql:// URL"
            ) from None
    return config


async def run_agent(bus: Bus, robot: RosRobot, node: AgentNode, brain: Brain | None = None) -> None:
    """The agent on the configured brain (or `brain`), with long-term memory.

    speech "text": /user/utterance in, /speech/text out (no speech models needed);
    speech "voice": also the listener on /audio/mic (speaker id unless speaker_id:=false)
    and the robot's voice on /speech/audio: the backend's own when it speaks, else TTS.
    """
    try:
        from memory.embeddings import ModelMissingError as EmbedderMissing
        from memory.sql_store import StoreError
        from omni_agent.runtime import open_runtime
    except ImportError as exc:
        raise NodeExit(f"agent_node: the agent core is not available ({exc})") from None
    if node.speech not in ("text", "voice"):
        raise NodeExit(f"agent_node: speech must be 'text' or 'voice', not {node.speech!r}")
    config = node_config(node)
    site = site_map(node.world)
    try:
        robot.configure(config.safety, site)  # motion model and envelope, as the agent's
    except UserError as exc:
        raise NodeExit(f"agent_node: {exc}") from None
    robot.places.update(config.robot.places)
    if site is not None:
        robot.places.update(site.landmarks)
        robot.places.update(site.places)
    live = node.open_live_view(site)  # None unless the live_view parameter is set
    sinks: list[EventSink] = [node.publish_event] if live is None else [live, node.publish_event]
    try:
        runtime = open_runtime(
            config, bus, robot, brain=brain, voice=node.speech == "voice",
            speaker_id=node.speaker_id, speaker_threshold=node.speaker_threshold,
            voiceprints=Path(node.voiceprints) if node.voiceprints else None,
            site=site, on_event=EventFanout(*sinks), summarize=brain is None,
        )  # fmt: skip
        async with runtime as rt:
            node.speaker = rt.speaker
            node.forget = rt.forget
            where = config.memory.url or config.memory.path
            node.get_logger().info(f"long-term memory in {where}")
            if rt.speech is not None:
                hears = "hears" if rt.speech.modalities.hears else "reads transcripts"
                voice = rt.speech.output.tts.name
                node.get_logger().info(f"speech: the backend {hears}; robot voice: {voice}")
            if rt.speaker is not None:
                node.get_logger().info(
                    f"speaker identification on, voiceprints in {rt.voiceprints}"
                )
            try:
                await serve(rt.agent, bus)
            finally:
                node.forget = None
                node.speaker = None
    except UserError as exc:  # a missing model or package, an unreachable memory database
        hint = " (or speaker_id:=false)" if "speaker" in str(exc).lower() else ""
        raise NodeExit(f"agent_node: {exc}{hint}") from None
    except (StoreError, EmbedderMissing) as exc:  # a memory file that cannot be used
        raise NodeExit(f"agent_node: {exc}") from None


async def serve(agent: Agent, bus: Bus) -> None:
    """Run the agent. Once it listens, its state goes out on /agent/state (latched), so a
    console or an operator knows that what is said from then on is heard: the models and
    memory take a while to load, and an utterance before that reaches no one."""
    running = asyncio.create_task(agent.run())
    ready = asyncio.create_task(agent.ready.wait())
    try:
        await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
        if agent.ready.is_set():
            state = agent.machine.state.value
            bus.publish(STATE, StateChange(state=state, previous=state, trigger="start"))
        await running
    finally:
        for task in (running, ready):
            task.cancel()
        await asyncio.gather(running, ready, return_exceptions=True)
