"""TTS -> ASR round trip: what the robot says is what whisper hears."""

from __future__ import annotations

import numpy as np
import pytest

from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.speech.pcm import resample
from omni_agent.speech.wer import word_error_rate

pytestmark = pytest.mark.speech

COMMANDS = [
    "Please bring me the red cup from the kitchen table.",
    "Go to the charging station.",
    "Stop.",
    "What did I tell you about my sister yesterday?",
    "Turn left and move forward two meters.",
    "Can you find my keys?",
    "Follow me to the living room.",
    "Put the book on the shelf next to the window.",
]


def test_word_error_rate_counts_edits_and_ignores_case_and_number_words() -> None:
    assert word_error_rate("Move two meters.", "move 2 meters") == 0.0
    assert word_error_rate("go to the door", "go to door") == 0.25
    assert word_error_rate("stop", "") == 1.0


def test_robot_voice_round_trip_stays_under_wer_bound(robot_tts, asr) -> None:
    errors = []
    for command in COMMANDS:
        pcm = resample(robot_tts.synthesize(command), robot_tts.sample_rate, AUDIO_SAMPLE_RATE)
        heard = asr.transcribe(pcm).text
        errors.append(word_error_rate(command, heard))
    assert sum(errors) / len(errors) <= 0.15, errors


def test_simulated_person_is_understood(person, asr) -> None:
    errors = [word_error_rate(c, asr.transcribe(person.say(c)).text) for c in COMMANDS[:4]]
    assert sum(errors) / len(errors) <= 0.2, errors


def median_pitch_hz(pcm: bytes, rate: int = AUDIO_SAMPLE_RATE) -> float:
    """Median F0 of the loud 40 ms frames, by autocorrelation (60-400 Hz)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    n = int(0.04 * rate)
    loud = np.sqrt(np.mean(x * x)) * 0.5
    pitches = []
    for i in range(0, len(x) - n, n):
        frame = x[i : i + n] - x[i : i + n].mean()
        if np.sqrt(np.mean(frame * frame)) < loud:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lo, hi = rate // 400, rate // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        pitches.append(rate / lag)
    return float(np.median(pitches))


def test_simulated_person_sounds_higher_than_the_robot(person, robot_tts) -> None:
    line = COMMANDS[0]
    robot = resample(robot_tts.synthesize(line), robot_tts.sample_rate, AUDIO_SAMPLE_RATE)
    assert median_pitch_hz(person.say(line)) > 1.1 * median_pitch_hz(robot)
