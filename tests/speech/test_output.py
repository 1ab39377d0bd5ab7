"""Streaming TTS output: clause streaming, interruption, backend audio."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from omni_agent.messages import SpeechText
from omni_agent.speech.outputs import ClauseSplitter, TtsOutputConfig, TtsSpeechOutput
from omni_agent.speech.pcm import read_wav
from omni_agent.speech.sinks import MemorySink, WavSink
from omni_agent.transport import SPEECH_TEXT, Bus

pytestmark = pytest.mark.speech

LONG = (
    "Sure, I can help with that. First I will go to the kitchen, then I will look for "
    "the red cup on the table, and after that I will bring it back to you in the living "
    "room. It should take about two minutes."
)


def stream(handle, text: str, size: int = 7) -> None:
    for i in range(0, len(text), size):
        handle.push_text(text[i : i + size])


def test_clause_splitter_speaks_the_first_clause_early_and_keeps_all_text() -> None:
    splitter = ClauseSplitter()
    pieces: list[str] = []
    for i in range(0, len(LONG), 5):
        pieces += splitter.push(LONG[i : i + 5])
    pieces += splitter.flush()
    assert pieces[0] == "Sure, "  # a short opener goes out at once
    assert pieces[1] == "I can help with that. "
    assert "".join(pieces) == LONG
    assert all(len(p) <= 220 for p in pieces)
    assert ClauseSplitter().push("It costs 3.50 euros. ") == ["It costs 3.50 euros. "]


async def test_streamed_text_is_played_in_order_and_marked_spoken(robot_tts, tmp_path) -> None:
    bus = Bus()
    texts = bus.subscribe(SPEECH_TEXT)
    sink = MemorySink(robot_tts.sample_rate)
    wav = WavSink(tmp_path / "episode.wav", sample_rate=16_000)
    output = TtsSpeechOutput([sink, wav], robot_tts, bus=bus, config=TtsOutputConfig(speed=None))
    handle = output.start()
    stream(handle, "Hello there. I am your robot.")
    handle.end_input()
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    await output.close()
    assert handle.spoken_text == "Hello there. I am your robot."
    assert handle.first_audio_at is not None and not handle.interrupted
    assert 1.0 < sink.seconds < 5.0
    pcm, rate = read_wav((tmp_path / "episode.wav").read_bytes())
    assert rate == 16_000 and abs(len(pcm) / 2 / rate - sink.seconds) < 0.05
    msg = texts.get_nowait()
    assert isinstance(msg, SpeechText) and msg.text == handle.spoken_text and not msg.interrupted


async def test_first_audio_comes_after_the_first_clause_not_the_whole_answer(robot_tts) -> None:
    sink = MemorySink(robot_tts.sample_rate)
    output = TtsSpeechOutput([sink], robot_tts, config=TtsOutputConfig(speed=1.0))
    handle = output.start()
    handle.push_text("Sure, I can do that. ")
    for _ in range(100):  # the rest of the answer has not arrived yet
        if handle.first_audio_at is not None:
            break
        await asyncio.sleep(0.01)
    assert handle.first_audio_at is not None
    assert handle.first_audio_at - handle.created_at < 0.5
    handle.interrupt()
    await output.close()


async def test_interrupt_stops_playback_and_nothing_stale_is_played(robot_tts) -> None:
    bus = Bus()
    texts = bus.subscribe(SPEECH_TEXT)
    sink = MemorySink(robot_tts.sample_rate)
    output = TtsSpeechOutput([sink], robot_tts, bus=bus, config=TtsOutputConfig(speed=1.0))
    handle = output.start()
    stream(handle, LONG[:120])
    while handle.first_audio_at is None:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.4)
    handle.interrupt()
    assert handle.stopped_at is not None
    stopped = handle.stopped_at
    stream(handle, LONG[120:])  # stale text from the model after the barge-in
    handle.push_audio(b"\x01\x00" * 2205, 22_050)
    handle.end_input()
    await asyncio.wait_for(handle.wait_for_playout(), 0.05)
    await asyncio.sleep(0.5)
    assert all(t <= stopped for t, _ in sink.chunks), "audio reached the sink after interrupt"
    # what was written ahead of the playback clock is at most lead + one chunk
    played_s = sink.seconds
    assert played_s <= (stopped - handle.first_audio_at) + 0.1
    assert handle.interrupted and handle.spoken_text
    assert LONG.startswith(handle.spoken_text) and len(handle.spoken_text) < 120
    msg = texts.get_nowait()
    assert msg is not None and msg.interrupted and msg.text == handle.spoken_text
    await output.close()


async def test_backend_audio_is_played_resampled_and_text_is_a_transcript(robot_tts) -> None:
    sink = MemorySink(22_050)
    output = TtsSpeechOutput([sink], robot_tts, config=TtsOutputConfig(speed=None))
    handle = output.start()
    t = np.arange(24_000) / 24_000
    tone = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()  # 1 s at 24 kHz
    handle.push_audio(tone[: len(tone) // 2], 24_000)
    handle.push_text("Hello from the model.")
    handle.push_audio(tone[len(tone) // 2 :], 24_000)
    handle.end_input()
    await asyncio.wait_for(handle.wait_for_playout(), 5)
    assert abs(sink.seconds - 1.0) < 0.01  # only the backend's audio, no piper speech
    assert handle.spoken_text == "Hello from the model."
    await output.close()


def test_a_long_first_sentence_starts_speaking_after_a_few_words() -> None:
    splitter = ClauseSplitter()
    pieces: list[str] = []
    for word in ["I", "can", "not", "find", "your", "keys", "anywhere", "in", "the", "house.", ""]:
        pieces += splitter.push(word + " ")
    pieces += splitter.flush()
    assert pieces[0] == "I can not find "
    assert "".join(pieces).split() == [
        "I",
        "can",
        "not",
        "find",
        "your",
        "keys",
        "anywhere",
        "in",
        "the",
        "house.",
    ]
    patient = ClauseSplitter(TtsOutputConfig(first_piece_max_words=None))
    assert patient.push("I can not find your keys ") == []


async def test_a_pause_silences_at_once_and_resume_plays_on_from_where_it_was_heard(
    robot_tts,
) -> None:
    text = LONG[:120]
    reference = MemorySink(robot_tts.sample_rate)  # the same words, never paused
    unpaced = TtsSpeechOutput([reference], robot_tts, config=TtsOutputConfig(speed=None))
    whole = unpaced.start()
    whole.push_text(text)
    whole.end_input()
    await asyncio.wait_for(whole.wait_for_playout(), 30)

    sink = MemorySink(robot_tts.sample_rate)
    output = TtsSpeechOutput([sink], robot_tts, config=TtsOutputConfig(speed=1.0))
    handle = output.start()
    handle.push_text(text)
    handle.end_input()
    while sink.seconds < 1.0:  # inside the second clause ("Sure," is the first)
        await asyncio.sleep(0.005)
    handle.pause()
    paused_at = handle.pauses[-1][0]
    written = len(sink.chunks)
    await asyncio.sleep(0.3)  # while paused the robot stays quiet
    assert len(sink.chunks) == written and sink.flushed_at[-1] >= paused_at
    assert not handle.done
    handle.resume()
    await asyncio.wait_for(handle.wait_for_playout(), 30)
    assert not handle.interrupted and handle.spoken_text == text.strip()
    before = b"".join(c for _, c in sink.chunks[:written])
    after = b"".join(c for _, c in sink.chunks[written:])
    # what was flushed at the pause (written ahead, not yet heard) is played again:
    # nothing lost, nothing skipped, at most the lead and a chunk played twice
    most = 2 * robot_tts.sample_rate * 100 // 1000
    rate = robot_tts.sample_rate
    replayed = [
        o for o in range(0, most + 1, 2) if before[: len(before) - o] + after == reference.pcm
    ]
    assert replayed, "the resumed audio does not continue where the pause was"
    assert handle.first_audio_at is not None
    unheard = len(before) / 2 / rate - (paused_at - handle.first_audio_at)  # ahead of the clock
    assert abs(replayed[0] / 2 / rate - max(0.0, unheard)) < 0.025, (replayed[0], unheard)
    await output.close()
    await unpaced.close()


async def test_interrupting_a_paused_handle_ends_it_silenced_at_the_pause(robot_tts) -> None:
    sink = MemorySink(robot_tts.sample_rate)
    output = TtsSpeechOutput([sink], robot_tts, config=TtsOutputConfig(speed=1.0))
    handle = output.start()
    stream(handle, LONG)
    while sink.seconds < 0.3:
        await asyncio.sleep(0.005)
    handle.pause()
    paused_at = handle.pauses[-1][0]
    handle.interrupt()  # the voice was a barge-in: the pause becomes the stop
    await asyncio.wait_for(handle.wait_for_playout(), 1)
    assert handle.interrupted and handle.silenced_at == paused_at
    assert all(t <= paused_at for t, _ in sink.chunks)
    await output.close()
