"""The Listener on the bus: voice activity, utterances with transcript and keyframes,
false starts, the robot's own voice, and barge-in against a speaking handle."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from omni_agent.messages import AudioChunk, ImageFrame, UserUtterance, VoiceActivity, now
from omni_agent.speech.listener import Listener, ListenerConfig
from omni_agent.speech.outputs import TtsOutputConfig, TtsSpeechOutput
from omni_agent.speech.pcm import read_wav, resample
from omni_agent.speech.sinks import MemorySink
from omni_agent.speech.vad import VadConfig
from omni_agent.speech.voices import cough, feed_mic, silence
from omni_agent.speech.wer import word_error_rate
from omni_agent.transport import (
    CAMERA,
    SPEECH_AUDIO,
    USER_PARTIAL,
    USER_TEXT,
    USER_TRANSCRIPT,
    VOICE,
    VOICE_HOLD,
    Bus,
)

pytestmark = pytest.mark.speech


def frame(shade: int, stamp: float) -> ImageFrame:
    return ImageFrame(width=2, height=2, encoding="mono8", data=bytes([shade] * 4), stamp=stamp)


async def drain(sub) -> list:
    out = []
    while (msg := sub.get_nowait()) is not None:
        out.append(msg)
    return out


async def test_utterance_carries_transcript_audio_speech_end_and_keyframes(person, asr) -> None:
    bus = Bus()
    voice, utterances = bus.subscribe(VOICE), bus.subscribe(USER_TEXT)
    line = "Please bring me the red cup from the kitchen table."
    speech = person.say(line)
    async with Listener(bus, VadConfig(), asr, ListenerConfig(max_keyframes=3, person="ana")):
        # faster than real time, on a simulated clock shared by the mic and the camera
        t = await feed_mic(bus, silence(0.3), speed=None, t0=100.0)
        step = len(speech) // 16 * 2
        for shade in range(8):  # camera frames while the person speaks
            bus.publish(CAMERA, frame(shade, stamp=t))
            end = len(speech) if shade == 7 else (shade + 1) * step
            t = await feed_mic(bus, speech[shade * step : end], speed=None, t0=t)
        await feed_mic(bus, silence(0.6), speed=None, t0=t)
        utterance = await asyncio.wait_for(utterances.get(), 10)
    assert isinstance(utterance, UserUtterance)
    assert word_error_rate(line, utterance.text) <= 0.2, utterance.text
    assert utterance.person == "ana" and utterance.speech_end is not None
    pcm, rate = read_wav(utterance.audio_wav or b"")
    assert rate == 16_000 and len(pcm) >= len(speech)
    shades = [f.data[0] for f in utterance.keyframes]
    assert len(shades) == 3 and shades[0] <= 1 and shades[-1] == 7  # spread over the utterance
    assert abs(utterance.speech_end - t) < 0.15
    events = await drain(voice)
    assert [e.speaking for e in events] == [True, False]
    assert isinstance(events[0], VoiceActivity) and events[0].speech_start is not None


async def test_cough_gives_voice_activity_but_no_utterance() -> None:
    bus = Bus()
    voice, utterances = bus.subscribe(VOICE), bus.subscribe(USER_TEXT)
    async with Listener(bus, VadConfig(), asr=None):
        await feed_mic(bus, silence(0.3) + cough() + silence(0.6), speed=None)
        await asyncio.sleep(0.05)
    assert [e.speaking for e in await drain(voice)] == [True, False]
    assert utterances.get_nowait() is None


async def test_robot_voice_on_the_mic_topic_never_triggers_voice_activity(person) -> None:
    bus = Bus()
    voice = bus.subscribe(VOICE)
    async with Listener(bus, VadConfig(), asr=None):
        await feed_mic(bus, person.say("I am the robot talking."), speed=None, source="robot")
        await asyncio.sleep(0.05)
    assert voice.get_nowait() is None


async def test_barge_in_stops_robot_speech_within_150_ms_of_detection(person, robot_tts) -> None:
    """User speech during SPEAKING: VOICE(speaking=True) -> interrupt() -> sinks flushed."""
    bus = Bus()
    voice = bus.subscribe(VOICE)
    sink = MemorySink(robot_tts.sample_rate)
    output = TtsSpeechOutput([sink], robot_tts, config=TtsOutputConfig(speed=1.0))
    async with Listener(bus, VadConfig(), asr=None):
        handle = output.start()
        handle.push_text("I will now tell you a rather long story about the kitchen. ")
        handle.end_input()
        while handle.first_audio_at is None:
            await asyncio.sleep(0.005)

        async def react() -> None:  # the agent's barge-in rule, in miniature
            async for activity in voice:
                if activity.speaking:
                    handle.interrupt()
                    return

        reaction = asyncio.create_task(react())
        speech = person.say("Stop, stop.") + silence(0.4)
        await feed_mic(bus, silence(0.2), speed=1.0)
        speech_start = now()
        await feed_mic(bus, speech, speed=1.0)
        await asyncio.wait_for(reaction, 1)
    assert handle.interrupted and handle.stopped_at is not None
    assert handle.stopped_at - speech_start < 0.15
    assert all(t <= handle.stopped_at for t, _ in sink.chunks)
    await output.close()


async def test_audio_backend_gets_the_utterance_at_the_endpoint_and_the_transcript_after(
    person, asr
) -> None:
    bus = Bus()
    utterances, transcripts = bus.subscribe(USER_TEXT), bus.subscribe(USER_TRANSCRIPT)
    config = ListenerConfig(wait_for_transcript=False)
    async with Listener(bus, VadConfig(), asr, config):
        t = await feed_mic(bus, silence(0.3) + person.say("Go to the kitchen."), speed=None, t0=0.0)
        await feed_mic(bus, silence(0.6), speed=None, t0=t)
        first = await asyncio.wait_for(utterances.get(), 5)
        later = await asyncio.wait_for(transcripts.get(), 10)
    assert first.text == "" and first.audio_wav
    assert word_error_rate("Go to the kitchen.", later.text) <= 0.25
    assert later.turn_id == first.turn_id  # the transcript names its utterance


async def test_a_pause_publishes_what_was_said_so_far_before_the_endpoint(person, asr) -> None:
    bus = Bus()
    voice, partials, utterances = (
        bus.subscribe(VOICE), bus.subscribe(USER_PARTIAL), bus.subscribe(USER_TEXT)
    )  # fmt: skip
    async with Listener(bus, VadConfig(), asr, ListenerConfig(person="ana")):
        line = "Please bring me the red cup from the kitchen table."
        t = await feed_mic(bus, silence(0.3) + person.say(line), speed=None)
        t = await feed_mic(bus, silence(0.15), speed=None, t0=t)  # a pause, not the endpoint
        partial = await asyncio.wait_for(partials.get(), 30)
        assert utterances.get_nowait() is None
        t = await feed_mic(bus, person.say("And the blue plate."), speed=None, t0=t)  # goes on
        await feed_mic(bus, silence(0.6), speed=None, t0=t)
        final = await asyncio.wait_for(utterances.get(), 30)
    started = (await drain(voice))[0]
    assert partial.person == "ana" and partial.speech_start == started.speech_start
    assert partial.turn_id == started.turn_id == final.turn_id  # one utterance, one id
    assert word_error_rate(line, partial.text) <= 0.2, partial.text
    assert "plate" in final.text.lower() and final.text != partial.text  # the final decides


async def test_self_voice_gate_ignores_the_robots_echo_but_not_a_louder_person(
    robot_tts, person
) -> None:
    echo = resample(robot_tts.synthesize("I am on my way to the kitchen."), 22_050, 16_000)
    echo = (np.frombuffer(echo, dtype="<i2") * 0.05).astype("<i2").tobytes()  # ~ -35 dBFS
    for gate, expected in ((None, True), (-30.0, False)):
        bus = Bus()
        voice = bus.subscribe(VOICE)
        async with Listener(bus, VadConfig(), None, ListenerConfig(self_voice_gate_dbfs=gate)):
            # the robot is speaking: its audio goes out on /speech/audio (a TopicSink)
            bus.publish(SPEECH_AUDIO, AudioChunk(pcm=bytes(2 * 16_000 * 5), source="robot"))
            await asyncio.sleep(0.01)
            await feed_mic(bus, silence(0.2) + echo + silence(0.4), speed=None)
            await asyncio.sleep(0.01)
            assert (voice.get_nowait() is not None) is expected, gate
            await feed_mic(bus, person.say("Stop, please.") + silence(0.4), speed=None)
            await asyncio.sleep(0.01)
            assert any(e.speaking for e in await drain(voice))


async def hear_over_robot(pcm: bytes, asr, config: ListenerConfig) -> tuple[list, Listener]:
    """What VOICE carries when `pcm` is spoken while the robot talks, once it is judged;
    the listener's pauses and play-ons (VOICE_HOLD) as `listener.holds_heard`."""
    bus = Bus()
    voice, holds = bus.subscribe(VOICE), bus.subscribe(VOICE_HOLD)
    async with Listener(bus, VadConfig(), asr, config) as listener:
        bus.publish(SPEECH_AUDIO, AudioChunk(pcm=bytes(2 * 16_000 * 10), source="robot"))
        await asyncio.sleep(0.01)
        await feed_mic(bus, silence(0.3) + pcm + silence(0.6), speed=None)

        async def judged() -> None:  # a backchannel, or the words of a barge-in
            while not listener.backchannels and "asr_done" not in (listener.latency or [{}])[-1]:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(judged(), 60)
        listener.holds_heard = [h.hold for h in await drain(holds)]  # type: ignore[attr-defined]
        return await drain(voice), listener


@pytest.mark.parametrize("word", ["Mm-hmm.", "Yeah.", "Okay.", "Right."])
async def test_a_backchannel_over_the_robot_is_no_barge_in(word, person, asr) -> None:
    heard, listener = await hear_over_robot(person.say(word), asr, ListenerConfig())
    assert listener.backchannels == 1
    assert not any(a.speaking for a in heard), heard
    assert listener.holds_heard == [True, False]  # paused at its onset, then played on
    # with backchannels taken for barge-ins, the same word stops the robot
    heard, _ = await hear_over_robot(person.say(word), asr, ListenerConfig(backchannel_ms=None))
    assert any(a.speaking for a in heard)


@pytest.mark.parametrize("words", ["Stop.", "Wait, I have a question about the kitchen."])
async def test_a_real_barge_in_over_the_robot_still_stops_it(words, person, asr) -> None:
    heard, listener = await hear_over_robot(person.say(words), asr, ListenerConfig())
    assert listener.backchannels == 0
    assert heard and heard[0].speaking, heard  # the barge-in comes first
    # paused at its onset, never played on: the pause became the stop
    assert listener.holds_heard[:1] == [True] and False not in listener.holds_heard


async def test_without_hold_playback_a_voice_over_the_robot_does_not_pause_it(person, asr) -> None:
    config = ListenerConfig(hold_playback=False)
    _, listener = await hear_over_robot(person.say("Mm-hmm."), asr, config)
    assert listener.backchannels == 1 and listener.holds_heard == []
