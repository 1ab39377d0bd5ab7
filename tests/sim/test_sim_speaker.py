"""A spoken episode where nobody tells the robot who is talking: Alice and Bob introduce
themselves, the listener binds each voice, and the next day each is recognised by voice
alone and gets their own memory back."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_agent.config import Config
from omni_agent.recall import LongTermMemory
from omni_agent.transport import Bus
from sim.clock import SimClock
from sim.instant_brain import instant_brain
from sim.runner import run_episode
from sim.scenario import Scenario

pytestmark = pytest.mark.speech


async def test_each_person_is_known_by_voice_and_remembered_separately(tmp_path: Path) -> None:
    from omni_agent.speech.speaker import SpeakerId, SpeakerModelMissing, VoiceprintStore
    from sim.voice import sim_voice, speech_unavailable

    if (why := speech_unavailable()) is not None:
        pytest.skip(why)
    try:
        speaker = SpeakerId(VoiceprintStore(VoiceprintStore.beside(tmp_path / "memory.db")))
    except SpeakerModelMissing as exc:
        pytest.skip(str(exc))
    scenario = Scenario.model_validate(
        {
            "name": "voices",
            "person": "Alice",
            "sessions": [
                {"day": 1, "lines": [
                    {"text": "Hi robot I'm Alice and my favourite drink is coffee."},
                    {"text": "Hello robot my name is Bob and my favourite drink is green tea.",
                     "person": "Bob"},
                ]},
                {"day": 2, "lines": [
                    {"text": "What is my favourite drink?"},
                    {"text": "What is my favourite drink?", "person": "Bob"},
                ]},
            ],
            "expect": [
                {"type": "reply_mentions", "turn": 3, "any_of": ["coffee"]},
                {"type": "reply_avoids", "turn": 3, "none_of": ["tea"]},
                {"type": "reply_mentions", "turn": 4, "any_of": ["tea"]},
                {"type": "reply_avoids", "turn": 4, "none_of": ["coffee"]},
            ],
        }
    )  # fmt: skip
    config, bus, clock = Config(), Bus(), SimClock()
    memory = LongTermMemory.open(config.memory, tmp_path / "memory.db", clock=clock.wall_time)
    try:
        async with (
            instant_brain(config) as brain,
            sim_voice(bus, tmp_path / "robot.wav", brain.profile, speaker=speaker) as voice,
        ):
            result = await run_episode(
                config, scenario, brain, voice=voice, bus=bus, memory=memory, clock=clock
            )
            heard = [(i.person, i.note) for i in voice.listener.identified]
    finally:
        memory.close()
    # the script's names never reach the agent: only what the voices tell
    assert [t.person for t in result.turns] == ["Alice", "Bob", "Alice", "Bob"], heard
    failed = [f"{c.description}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed, heard


def test_speaker_id_on_a_typed_episode_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from omni_agent.cli import main

    assert main(["sim", "--speaker-id", "--text", "--brain", "scripted"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--speaker-id needs a spoken episode" in err
