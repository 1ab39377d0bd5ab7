"""Speech fixtures: each model is loaded once per test session (they take ~0.3-0.8 s).

The voices are deterministic (no sampling noise): the same audio and transcripts every run."""

from __future__ import annotations

import pytest

from omni_agent.speech.models import ModelMissingError


def _load(factory):
    try:
        return factory()
    except ModelMissingError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def asr():
    from omni_agent.speech.asr import WhisperAsr

    return _load(lambda: WhisperAsr(cpu_threads=2))


@pytest.fixture(scope="session")
def robot_tts():
    from omni_agent.speech.tts import PiperTts

    return _load(lambda: PiperTts(deterministic=True))


@pytest.fixture(scope="session")
def person():
    from omni_agent.speech.voices import PersonVoice

    return _load(lambda: PersonVoice(deterministic=True))


@pytest.fixture(scope="session")
def encoder():
    """The speaker encoder (its weights ship in the resemblyzer wheel), loaded once."""
    from omni_agent.speech.speaker import SpeakerModelMissing, VoiceEncoder

    try:
        return VoiceEncoder()
    except SpeakerModelMissing as exc:
        pytest.skip(str(exc))
