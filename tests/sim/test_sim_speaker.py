"""Spoken episodes where nobody tells the robot who is talking: Alice and Bob introduce
themselves and talk until their voices are enrolled, and the next day each is recognised
by voice alone and gets their own memory back; a stranger who speaks right after Alice's
first "I'm Alice" is not taken for her and never hears her secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omni_agent.config import Config
from omni_agent.recall import LongTermMemory
from omni_agent.transport import Bus
from sim.clock import SimClock
from sim.instant_brain import instant_brain
from sim.library import SPOKEN_VOICE_SPEED
from sim.runner import run_episode
from sim.scenario import Scenario

pytestmark = pytest.mark.speech


async def _episode(tmp_path: Path, spec: dict[str, Any]) -> tuple[Any, list[str]]:
    from memory.voiceprints import VoiceprintStore
    from omni_agent.speech.speaker import SpeakerId, SpeakerModelMissing
    from sim.voice import sim_voice, speech_unavailable

    if (why := speech_unavailable()) is not None:
        pytest.skip(why)
    try:
        speaker = SpeakerId(VoiceprintStore(VoiceprintStore.beside(tmp_path / "memory.db")))
    except SpeakerModelMissing as exc:
        pytest.skip(str(exc))
    scenario = Scenario.model_validate(spec)
    config, bus, clock, wav = Config(), Bus(), SimClock(), tmp_path / "robot.wav"
    memory = LongTermMemory.open(config.memory, tmp_path / "memory.db", clock=clock.wall_time)
    try:
        async with (
            instant_brain(config) as brain,
            # as fast as the spoken library plays: voices are told apart on the same samples
            sim_voice(bus, wav, brain.profile, speaker=speaker, speed=SPOKEN_VOICE_SPEED) as voice,
        ):
            result = await run_episode(
                config, scenario, brain, voice=voice, bus=bus, memory=memory, clock=clock
            )
            notes = [f"{i.person} ({i.confidence:.2f}) {i.note}" for i in voice.listener.identified]
    finally:
        memory.close()
    return result, notes


async def test_each_person_is_known_by_voice_and_remembered_separately(tmp_path: Path) -> None:
    enrol = [
        "Please bring me the red cup from the kitchen.",
        "I left my keys somewhere in the living room.",
    ]
    result, heard = await _episode(tmp_path, {
        "name": "voices",
        "person": "Alice",
        "sessions": [
            {"day": 1, "lines": [
                {"text": "Hi robot I'm Alice."},
                {"text": "Hello robot my name is Bob.", "person": "Bob"},
                *[{"text": line} for line in enrol],
                *[{"text": line, "person": "Bob"} for line in enrol],
                {"text": "Remember that my favourite drink is coffee."},
                {"text": "Remember that my favourite drink is green tea.", "person": "Bob"},
            ]},
            # lines of a second or more: a voice in under a second is often unsure (unknown)
            {"day": 2, "lines": [
                {"text": "Can you remind me what my favourite drink is?"},
                {"text": "Can you remind me what my favourite drink is?", "person": "Bob"},
            ]},
        ],
        "expect": [
            {"type": "reply_mentions", "turn": 9, "any_of": ["coffee"]},
            {"type": "reply_avoids", "turn": 9, "none_of": ["tea"]},
            {"type": "reply_mentions", "turn": 10, "any_of": ["tea"]},
            {"type": "reply_avoids", "turn": 10, "none_of": ["coffee"]},
        ],
    })  # fmt: skip
    # the script's names never reach the agent: only what the voices tell, once enrolled
    assert [t.person for t in result.turns] == [None] * 6 + ["Alice", "Bob"] * 2, "; ".join(heard)
    failed = [f"{c.description}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed, heard


async def test_a_stranger_after_a_short_enrolment_is_unknown_and_hears_no_secret(
    tmp_path: Path,
) -> None:
    """Alice says "I'm Alice." once; Dora, never enrolled, speaks three lines: they are
    not Alice's, Alice's print stays hers, and the next day Alice gets her memory while
    Dora, unknown, does not."""
    result, heard = await _episode(tmp_path, {
        "name": "stranger",
        "person": "Alice",
        "sessions": [
            {"day": 1, "lines": [
                {"text": "Hi robot I'm Alice."},
                {"text": "Hello robot where is the kitchen?", "person": "Dora"},
                {"text": "Can you go to the charging dock now?", "person": "Dora"},
                {"text": "Turn around and look at the sofa please.", "person": "Dora"},
                {"text": "Please bring me the red cup from the kitchen."},
                {"text": "I left my keys somewhere in the living room."},
                {"text": "My PIN is 4321 and my favourite drink is coffee."},
            ]},
            {"day": 2, "lines": [
                {"text": "What is my favourite drink?"},
                {"text": "What is my favourite drink and my PIN?", "person": "Dora"},
            ]},
        ],
        "expect": [
            {"type": "reply_mentions", "turn": 8, "any_of": ["coffee"]},
            {"type": "reply_avoids", "turn": 9, "none_of": ["coffee", "4321"]},
        ],
    })  # fmt: skip
    assert [t.person for t in result.turns] == [None] * 6 + ["Alice", "Alice", None], "; ".join(
        heard
    )
    failed = [f"{c.description}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed, heard


def test_speaker_id_on_a_typed_episode_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from omni_agent.cli import main

    assert main(["sim", "--speaker-id", "--text", "--brain", "scripted"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--speaker-id needs a spoken episode" in err
