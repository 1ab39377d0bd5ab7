"""The omni path in the simulator: people speak, the omni double hears, remembers, speaks.

Every line goes through the whole spoken path: the person's voice into the mic, the
listener's endpointing and whisper transcript, the agent's request with the audio part,
the double's own whisper, its answer by the instant brain's rules, its piper speech at
24 kHz played by the robot. Audio runs at VOICE_SPEED times real time (endpointing counts
samples, so it hears the same); whisper runs twice per line, so each scenario is its own
test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_agent.config import Config
from omni_agent.model.profiles import PROFILES
from omni_agent.runtime import NoRobotVoice
from omni_agent.speech.wer import word_error_rate
from omni_agent.transport import Bus
from sim.brains.omni_double import HeardRequest, OmniDouble
from sim.instant_brain import omni_double_brain
from sim.library import SPOKEN_VOICE_SPEED, library_paths, run_scenario
from sim.runner import EpisodeResult, run_episode
from sim.scenario import Scenario
from sim.voice import sim_voice, speech_unavailable

pytestmark = pytest.mark.speech

AUDIO_PROFILES = sorted(name for name, p in PROFILES.items() if p.audio_in)
LIBRARY = library_paths()
MEMORY_SCENARIO = Path("sim/scenarios/object-across-sessions.yaml")


@pytest.fixture(autouse=True)
def _speech_models() -> None:
    if (why := speech_unavailable()) is not None:
        pytest.skip(why)


def heard_turns(double: OmniDouble) -> list[HeardRequest]:
    """The requests that carried the person's voice (not the warm-ups)."""
    return [r for r in double.log if r.parts("input_audio")]


async def run_spoken(
    scenario: Scenario, tmp_path: Path, profile: str = "vllm-omni"
) -> tuple[EpisodeResult, OmniDouble]:
    config = Config()
    async with omni_double_brain(config, profile) as brain:
        assert isinstance(brain.backend, OmniDouble)
        result = await run_scenario(
            config, scenario, brain, tmp_path, spoken=True, voice_speed=SPOKEN_VOICE_SPEED
        )
        return result, brain.backend


def test_the_omni_double_covers_every_audio_input_profile() -> None:
    assert {"omni-agent-serve", "vllm-omni", "vllm-omni-thinker"} <= set(AUDIO_PROFILES)


@pytest.mark.parametrize("profile", AUDIO_PROFILES)
async def test_memory_reaches_the_omni_model_beside_the_audio(profile: str, tmp_path: Path) -> None:
    """The regression test for "memory never reaches an omni model": on day 3 the question
    goes to the model as audio, and the keys' place goes with it as remembered text."""
    scenario = Scenario.load(MEMORY_SCENARIO)
    result, double = await run_spoken(scenario, tmp_path, profile)

    turns = heard_turns(double)
    assert len(turns) == len(scenario.lines)  # every line reached the model as audio
    probe = turns[-1]
    assert probe.heard is not None and "keys" in probe.heard.lower()
    assert "You are in the living room" in probe.user_text  # the situation
    assert "[You remember:" in probe.user_text
    remembered = probe.user_text.split("[You remember:", 1)[1]
    assert "kitchen table" in remembered
    failed = [f"{c.description}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed


async def test_the_stored_user_text_is_what_the_listener_heard(tmp_path: Path) -> None:
    """The model hears the audio itself, but memory, retrieval and the logs keep words."""
    scenario = Scenario.load(MEMORY_SCENARIO)
    result, _ = await run_spoken(scenario, tmp_path)
    assert len(result.turns) == len(scenario.lines)
    for line, turn in zip(scenario.lines, result.turns, strict=True):
        assert word_error_rate(line.text, turn.user_text) <= 0.25, (line.text, turn.user_text)


async def test_the_robot_speaks_only_with_the_models_voice(tmp_path: Path) -> None:
    """A backend that speaks is heard as it speaks: the robot synthesises nothing itself."""
    scenario = Scenario.load(Path("sim/scenarios/greeting.yaml"))
    config, bus, wav = Config(), Bus(), tmp_path / "robot.wav"
    async with (
        omni_double_brain(config) as brain,
        sim_voice(bus, wav, brain.profile, speed=SPOKEN_VOICE_SPEED) as voice,
    ):
        result = await run_episode(config, scenario, brain, voice=voice, bus=bus)
    assert isinstance(voice.output.tts, NoRobotVoice)
    assert voice.output.tts.asked == []
    assert all(t.say and t.spoken == t.say.strip() for t in result.turns)


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
async def test_library_scenario_passes_on_the_omni_double(path: Path, tmp_path: Path) -> None:
    """The same expectations as on the instant brain (test_sim_library.py), spoken."""
    scenario = Scenario.load(path)
    result, double = await run_spoken(scenario, tmp_path)
    failed = [f"{c.description}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed
    assert result.violations == []
    assert len(result.line_turns) == len(scenario.lines)
    assert len(heard_turns(double)) >= len(scenario.lines)  # the words went as audio
