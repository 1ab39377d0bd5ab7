"""The espeak-ng fallback (Debian package; skipped where it is not installed)."""

from __future__ import annotations

import shutil

import pytest

from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.speech.pcm import resample
from omni_agent.speech.tts import EspeakTts
from omni_agent.speech.wer import word_error_rate

pytestmark = [
    pytest.mark.speech,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]


def test_espeak_fallback_speaks_intelligibly(asr) -> None:
    tts = EspeakTts()
    pcm = tts.synthesize("Go to the charging station.")
    assert tts.sample_rate > 0 and len(pcm) > tts.sample_rate  # more than half a second
    heard = asr.transcribe(resample(pcm, tts.sample_rate, AUDIO_SAMPLE_RATE)).text
    assert word_error_rate("Go to the charging station.", heard) <= 0.25, heard
