"""The robot's own voice on its mic: the simulated room brings it back (RoomEcho); without
echo cancellation the robot takes its own voice for a person and stops itself, with it
(WebRTC AEC3) it talks on alone and a person talking over it still stops it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from omni_agent.messages import VoiceActivity, now
from omni_agent.speech.listener import Listener, ListenerConfig
from omni_agent.speech.outputs import TtsOutputConfig, TtsSpeechOutput
from omni_agent.speech.scheduler import SpeechScheduler
from omni_agent.speech.sinks import TopicSink
from omni_agent.speech.vad import VadConfig
from omni_agent.speech.voices import EchoPath, RoomEcho, feed_mic, silence
from omni_agent.transport import VOICE, VOICE_HOLD, Bus

pytestmark = pytest.mark.speech

STORY = (
    "Let me tell you about the kitchen. The table is by the window, the cups are on the "
    "shelf above the sink, and the kettle is next to the fridge."
)


@dataclass
class Scene:
    """What happened while the robot spoke with its mic in the room."""

    interrupted: bool = False
    barge_ins: list[VoiceActivity] = field(default_factory=list)
    person_at: float | None = None
    """When the person's voice began on the mic."""
    silenced_at: float | None = None
    """When the robot went quiet for the person (paused or stopped)."""
    backchannels: int = 0


async def robot_speaks(
    robot_tts,
    config: ListenerConfig,
    *,
    echo: EchoPath | None,
    asr=None,
    person: bytes = b"",
    person_after_s: float = 1.0,
) -> Scene:
    """The robot says STORY in real time; its mic hears the room (silence, the robot's echo
    if `echo`, and `person` after `person_after_s`); the agent's barge-in rule in miniature
    stops the robot on VoiceActivity(speaking=True) and pauses it on VoiceHold."""
    bus = Bus()
    voice, holds = bus.subscribe(VOICE), bus.subscribe(VOICE_HOLD)
    output = TtsSpeechOutput([TopicSink(bus)], robot_tts, config=TtsOutputConfig(speed=1.0))
    speech = SpeechScheduler(output)
    room = RoomEcho(bus, echo) if echo is not None else None
    scene = Scene()
    async with Listener(bus, VadConfig(), asr, config) as listener:
        handle = speech.open()
        handle.push_text(STORY)
        handle.end_input()

        async def react() -> None:
            async for activity in voice:
                if activity.speaking:
                    scene.barge_ins.append(activity)
                    speech.interrupt()

        async def hold() -> None:
            async for held in holds:
                speech.pause() if held.hold else speech.resume()

        reaction, holding = asyncio.create_task(react()), asyncio.create_task(hold())
        fed = 0.0
        spoke = not person
        while not handle.done:  # the room, in real time, for as long as the robot talks
            if not spoke and fed >= person_after_s:
                scene.person_at = now()
                await feed_mic(bus, person, speed=1.0, echo=room)
                spoke = True
            fed += 0.1
            await feed_mic(bus, silence(0.1), speed=1.0, echo=room)
        await feed_mic(bus, silence(0.8), speed=1.0, echo=room)  # the echo's tail, the endpoint
        if person and asr is not None:  # the listener's verdict on the person's words
            await asyncio.wait_for(judged(listener), 60)
        reaction.cancel()
        holding.cancel()
        scene.backchannels = listener.backchannels
    scene.interrupted = handle.interrupted
    scene.silenced_at = handle.silenced_at
    await speech.close()
    return scene


async def judged(listener: Listener) -> None:
    while not listener.backchannels and "asr_done" not in (listener.latency or [{}])[-1]:
        await asyncio.sleep(0.01)


async def test_without_cancellation_the_robot_interrupts_itself_on_its_own_echo(robot_tts) -> None:
    alone = await robot_speaks(robot_tts, ListenerConfig(echo_cancellation=False), echo=None)
    assert not alone.interrupted and not alone.barge_ins  # a mic that never hears the robot
    echoed = await robot_speaks(robot_tts, ListenerConfig(echo_cancellation=False), echo=EchoPath())
    assert echoed.interrupted and echoed.barge_ins  # the robot took its own voice for a person


async def test_with_cancellation_the_robot_talks_on_over_its_own_echo(robot_tts) -> None:
    config = ListenerConfig(echo_cancellation=True)  # no ASR: any voice would stop it at once
    echoed = await robot_speaks(robot_tts, config, echo=EchoPath())
    assert not echoed.interrupted and not echoed.barge_ins


async def test_with_cancellation_a_person_over_the_robot_still_stops_it(
    robot_tts, person, asr
) -> None:
    words = person.say("Stop, please. I have a question.")
    scene = await robot_speaks(
        robot_tts, ListenerConfig(echo_cancellation=True), echo=EchoPath(), asr=asr, person=words
    )
    assert scene.interrupted and scene.barge_ins and scene.person_at is not None
    assert scene.barge_ins[0].speech_start >= scene.person_at - 0.1  # the person, not the echo
    assert scene.silenced_at is not None and scene.silenced_at >= scene.person_at


def test_an_echo_spec_is_gain_and_delay_or_one_line_error() -> None:
    from omni_agent.errors import UserError

    assert EchoPath.parse("-6") == EchoPath(gain_db=-6.0)
    assert EchoPath.parse("-12,55") == EchoPath(gain_db=-12.0, delay_ms=55.0)
    for bad in ("loud", "-6,40,1", "-6,-5", ""):
        with pytest.raises(UserError, match=r"GAIN_DB|gain"):
            EchoPath.parse(bad)


async def test_without_the_canceller_one_line_says_so_and_the_energy_gate_stands_in(
    robot_tts, monkeypatch, caplog
) -> None:
    import logging
    import sys

    import numpy as np

    from omni_agent.messages import AudioChunk
    from omni_agent.speech.pcm import resample
    from omni_agent.transport import SPEECH_AUDIO

    monkeypatch.setitem(sys.modules, "livekit.rtc", None)  # the package is not installed
    echo = resample(robot_tts.synthesize("I am on my way to the kitchen."), 22_050, 16_000)
    echo = (np.frombuffer(echo, dtype="<i2") * 0.05).astype("<i2").tobytes()  # ~ -35 dBFS
    bus = Bus()
    voice = bus.subscribe(VOICE)
    with caplog.at_level(logging.WARNING, logger="omni_agent.speech.echo"):
        listener = Listener(bus, VadConfig(), None, ListenerConfig(echo_cancellation=True))
    warnings = [r.getMessage() for r in caplog.records]
    assert listener.echo is None and len(warnings) == 1
    assert "echo cancellation off" in warnings[0] and "\n" not in warnings[0]
    async with listener:
        bus.publish(SPEECH_AUDIO, AudioChunk(pcm=bytes(2 * 16_000 * 5), source="robot"))
        await asyncio.sleep(0.01)
        await feed_mic(bus, silence(0.2) + echo + silence(0.4), speed=None)
        await asyncio.sleep(0.01)
    assert voice.get_nowait() is None  # the quiet echo is under the fallback gate


def test_robot_audio_played_while_the_mic_was_silent_does_not_cancel_the_next_voice(
    person, robot_tts
) -> None:
    """A mic node that publishes only while someone speaks (or a mic that was off) meets
    the robot's voice from before its gap: that audio echoed into nothing, and the person's
    next words come out of the canceller as they went in."""
    import time

    import numpy as np

    from omni_agent.speech.echo import EchoCanceller

    pytest.importorskip("livekit")
    robot = robot_tts.synthesize("Nice to meet you, Alice! My name is Robbie.")
    words = silence(0.2) + person.say("Where are my keys?") + silence(0.3)

    def level(pcm: bytes) -> float:
        x = np.frombuffer(pcm, np.int16).astype(np.float64)
        return float(10 * np.log10(np.mean(x**2) + 1e-9))

    fresh = EchoCanceller().process(words)
    stale = EchoCanceller()
    stale.played(robot, robot_tts.sample_rate)
    time.sleep(0.4)  # the robot's audio is now older than the mic's gap
    after_gap = stale.process(words)
    # the first half second is where a stale reference would be subtracted
    head = 16000 * 2 // 2
    assert abs(level(after_gap[:head]) - level(fresh[:head])) < 1.0
