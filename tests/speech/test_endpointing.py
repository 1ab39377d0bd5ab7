"""Endpointing on synthetic clips: pauses, pre-roll, speech-end timing, short noises."""

from __future__ import annotations

import numpy as np
import pytest

from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.speech.vad import Endpointer, SpeechEnded, SpeechStarted, VadConfig, VadEvent
from omni_agent.speech.voices import cough, silence

pytestmark = pytest.mark.speech

T0 = 1000.0


def run(pcm: bytes, config: VadConfig | None = None, chunk_ms: int = 32) -> list[VadEvent]:
    """Feed a clip in odd-sized chunks on a virtual clock starting at T0."""
    endpointer = Endpointer(config)
    events: list[VadEvent] = []
    step = AUDIO_SAMPLE_RATE * chunk_ms // 1000 * 2
    for offset in range(0, len(pcm), step):
        piece = pcm[offset : offset + step]
        stamp = T0 + (offset + len(piece)) / 2 / AUDIO_SAMPLE_RATE
        events.extend(endpointer.feed(piece, stamp))
    return events


def ended(events: list[VadEvent]) -> list[SpeechEnded]:
    return [e for e in events if isinstance(e, SpeechEnded) and e.is_speech]


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / AUDIO_SAMPLE_RATE


def test_long_pause_splits_two_utterances(person) -> None:
    first, second = person.say("Go to the kitchen."), person.say("Then come back.")
    clip = silence(0.5) + first + silence(1.2) + second + silence(0.8)
    assert len(ended(run(clip))) == 2


def test_short_pause_inside_a_sentence_does_not_split_it(person) -> None:
    clip = silence(0.5) + person.say("Bring me") + silence(0.15) + person.say("the red cup.")
    clip += silence(0.8)
    assert len(ended(run(clip))) == 1


def test_speech_end_is_when_the_voice_stopped_not_when_the_endpoint_fired(person) -> None:
    speech = person.say("Follow me to the living room.")
    clip = silence(0.5) + speech + silence(1.0)
    (utterance,) = ended(run(clip))
    true_start, true_end = T0 + 0.5, T0 + 0.5 + seconds(speech)
    # webrtcvad hears the faint tail of the last word: allow ~0.15 s
    assert abs(utterance.end - true_end) < 0.15
    assert abs(utterance.start - true_start) < 0.08


def test_pre_roll_keeps_the_first_syllable(person) -> None:
    speech = person.say("Stop the robot now.")
    lead = 0.6
    clip = silence(lead) + speech + silence(0.8)
    events = run(clip)
    (start,) = [e for e in events if isinstance(e, SpeechStarted)]
    (utterance,) = ended(events)
    # the utterance audio begins before the onset of speech, by at least 100 ms
    begins_at = utterance.end - (utterance.voiced_bytes / 2 / AUDIO_SAMPLE_RATE)
    assert begins_at <= T0 + lead - 0.1
    assert start.start >= T0 + lead - 0.05


def test_cough_is_not_an_utterance() -> None:
    clip = silence(0.5) + cough() + silence(0.8)
    events = run(clip)
    assert ended(events) == []


def test_energy_gate_ignores_quiet_background_speech(person) -> None:
    quiet = (np.frombuffer(person.say("Go to the kitchen."), dtype="<i2") * 0.03).astype("<i2")
    clip = silence(0.5) + quiet.tobytes() + silence(0.8)
    assert ended(run(clip, VadConfig(energy_gate_dbfs=-40.0))) == []
