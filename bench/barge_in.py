"""`omni-agent bench turns --barge-in [--echo]`: a person's voice over the robot's.

Two questions, each answered side by side for the listener's policies:

- *Over the robot*: backchannels ("Mm-hmm.", "Yeah.") and barge-ins ("Stop.", "No, go to
  the kitchen instead.") in three of the sim's voices, spoken in real time while the
  robot really talks (piper, paced playback, the agent's barge-in rule in miniature:
  VoiceHold pauses and resumes, VoiceActivity(speaking=True) interrupts). Measured: the
  reaction to a barge-in (voice onset -> the robot silent: paused or stopped), the
  backchannels that ended the robot's turn, and those that paused it and for how long.
  With `--echo` the mic also hears the robot (RoomEcho) and the listener cancels it.
- *The robot alone* (`--echo` only): N minutes of the robot speaking with nobody in the
  room, its echo on the mic, fed faster than real time on a simulated clock: how often
  it takes its own voice for a person (self-interruptions per hour of robot speech) with
  no guard, the energy gate, and echo cancellation.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BACKCHANNEL_WORDS = ("Mm-hmm.", "Yeah.", "Okay.", "Right.", "Uh-huh.", "I see.")
BARGE_INS = ("Stop.", "Wait.", "Hold on, please.", "No, go to the kitchen instead.")
BARGE_VOICES = ("Alice", "Bob", "Carol")
LEAD_S = 0.4
"""Room before each line (the person's voice starts this long into the clip)."""
ROBOT_FIRST_S = 1.0
"""The robot talks this long before the person starts."""
VERDICT_S = 8.0
"""After the line, the listener's verdict comes within this (whisper on loaded cores takes
under 2 s); a voice never heard at all (cancelled with the echo) has none."""
ROBOT_TALK = (
    "The kitchen is at the end of the hallway, past the stairs and the little table with "
    "the plant on it. The cups are on the shelf above the sink, the plates are in the "
    "cupboard to the left, and the kettle stands next to the fridge by the window."
)
ROBOT_ALONE = (
    "Good morning, I hope you slept well.",
    "The weather today looks sunny with a light breeze from the west.",
    "I have put your glasses on the table next to the sofa.",
    "Your daughter called yesterday evening and said she will visit on Sunday.",
    "Remember to take your blood pressure tablet with breakfast.",
    "The kitchen floor is still a little wet, so please walk carefully.",
    "Shall I read you the news, or would you rather hear some music?",
    "I can also remind you about the doctor's appointment on Thursday at ten.",
    "The plants in the living room were watered two days ago.",
    "If you need anything at all, just call my name and I will come.",
)


@dataclass
class Trial:
    text: str
    backchannel: bool
    stopped: bool
    """The robot's turn ended (interrupted)."""
    silenced_after_s: float | None
    """Voice onset -> the robot silent (paused or stopped), if it went silent."""
    pauses_s: list[float] = field(default_factory=list)
    """How long each pause during this voice lasted (the robot played on after it)."""


def listener_policies() -> dict[str, dict[str, Any]]:
    """The rows of the table: ListenerConfig fields."""
    return {
        "every voice barges in (backchannel_ms: None)": {"backchannel_ms": None},
        "backchannels talk on, no pause (hold_playback: false)": {"hold_playback": False},
        "pause at onset, play on after a backchannel (default)": {},
    }


class _Room:
    """The mic as a sound card runs it: 20 ms chunks on one real-time schedule (no drift
    between the robot's playback clock and the mic's), each carrying the room's echo of the
    robot and whatever the person is saying."""

    def __init__(self, bus: Any, echo: Any) -> None:
        from omni_agent.speech.voices import RoomEcho

        self._bus = bus
        self._echo = RoomEcho(bus, echo) if echo is not None else None
        self._voice = b""
        self._voice_starts: list[float] = []
        self.fed = 0
        """Chunks fed so far."""

    def say(self, pcm: bytes) -> None:
        """The person starts `pcm` with the next chunk."""
        self._voice = pcm

    async def run(self) -> None:
        from omni_agent.messages import AudioChunk, now
        from omni_agent.transport import MIC

        step = 640
        start = now()
        while True:
            self.fed += 1
            await asyncio.sleep(max(0.0, start + self.fed * 0.02 - now()))
            piece, self._voice = self._voice[:step], self._voice[step:]
            piece += bytes(step - len(piece))
            if self._echo is not None:
                piece = self._echo.mix(piece)
            self._bus.publish(MIC, AudioChunk(pcm=piece, stamp=now()))

    async def wait(self, seconds: float) -> None:
        """Until `seconds` more of the room have been fed."""
        until = self.fed + round(seconds / 0.02)
        while self.fed < until:
            await asyncio.sleep(0.01)

    def close(self) -> None:
        if self._echo is not None:
            self._echo.close()


async def _session(
    lines: list[tuple[str, bool, bytes]],
    asr: Any,
    robot_tts: Any,
    config: Any,
    echo: Any,
    progress: Callable[[str], None],
) -> list[Trial]:
    """Each line spoken over a fresh robot utterance, through one listener."""
    from omni_agent.messages import now
    from omni_agent.speech.listener import Listener
    from omni_agent.speech.outputs import TtsOutputConfig, TtsSpeechOutput
    from omni_agent.speech.scheduler import SpeechScheduler
    from omni_agent.speech.sinks import TopicSink
    from omni_agent.speech.vad import VadConfig
    from omni_agent.transport import VOICE, VOICE_HOLD, Bus

    bus = Bus()
    voice, holds = bus.subscribe(VOICE), bus.subscribe(VOICE_HOLD)
    output = TtsSpeechOutput([TopicSink(bus)], robot_tts, config=TtsOutputConfig(speed=1.0))
    speech = SpeechScheduler(output)
    room = _Room(bus, echo)
    trials: list[Trial] = []

    async def agent() -> None:  # the agent's barge-in rule (omni_agent/inputs.py), in small
        async def pauses() -> None:
            async for hold in holds:
                speech.pause() if hold.hold else speech.resume()

        task = asyncio.create_task(pauses())
        try:
            async for activity in voice:
                if activity.speaking:
                    speech.interrupt()
        finally:
            task.cancel()

    async with Listener(bus, VadConfig(), asr, config) as listener:
        tasks = [asyncio.create_task(agent()), asyncio.create_task(room.run())]
        try:
            for text, backchannel, pcm in lines:
                speech.interrupt()  # a fresh robot utterance for every line
                handle = speech.open()
                handle.push_text(ROBOT_TALK)
                handle.end_input()
                while handle.first_audio_at is None:
                    await asyncio.sleep(0.005)
                await room.wait(ROBOT_FIRST_S)
                before = (listener.backchannels, listener.false_starts, len(listener.latency))
                paused_before = len(handle.pauses)
                room.say(pcm)
                onset = now() + LEAD_S  # the next chunk carries the line's first sample
                await room.wait(len(pcm) / 32000)
                deadline = now() + VERDICT_S

                def judged(before: tuple[int, int, int] = before) -> bool:
                    b, f, n = before
                    done = len(listener.latency) > n and "asr_done" in listener.latency[-1]
                    return listener.backchannels > b or listener.false_starts > f or done

                while not judged() and now() < deadline:
                    await room.wait(0.1)
                await room.wait(0.1)  # the agent acts on the verdict
                silenced = handle.silenced_at
                pauses = [
                    (b if b is not None else now()) - a for a, b in handle.pauses[paused_before:]
                ]
                if silenced is None and handle.pauses[paused_before:]:
                    silenced = handle.pauses[paused_before][0]
                trials.append(
                    Trial(
                        text,
                        backchannel,
                        handle.interrupted,
                        silenced - onset if silenced is not None else None,
                        pauses if not handle.interrupted else [],
                    )
                )
                progress(".")
        finally:
            for task in tasks:
                task.cancel()
            speech.interrupt()
            room.close()
    await output.close()
    return trials


def _summary(trials: list[Trial]) -> dict[str, Any]:
    bcs = [t for t in trials if t.backchannel]
    bis = [t for t in trials if not t.backchannel]
    reactions = [1000 * t.silenced_after_s for t in bis if t.silenced_after_s is not None]
    paused = [t for t in bcs if t.pauses_s and not t.stopped]
    pause_ms = [1000 * sum(t.pauses_s) for t in paused]
    return {
        "backchannels_that_stopped_the_robot": f"{sum(t.stopped for t in bcs)}/{len(bcs)}",
        "backchannels_that_paused_it": f"{len(paused)}/{len(bcs)}",
        "backchannel_pause_ms": _stats(pause_ms),
        "barge_ins_that_stopped_it": f"{sum(t.stopped for t in bis)}/{len(bis)}",
        "barge_in_reaction_ms": _stats(reactions),
    }


def _stats(values: list[float]) -> dict[str, int | None]:
    if not values:
        return {"median": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(values)), "p90": round(p90)}


def run_over_robot(
    synthesize: Callable[[str, str], bytes], echo: Any, show: bool
) -> dict[str, dict[str, Any]]:
    """Backchannels and barge-ins over the robot, one row per listener policy."""
    from omni_agent.speech.asr import WhisperAsr
    from omni_agent.speech.listener import ListenerConfig
    from omni_agent.speech.tts import PiperTts
    from omni_agent.speech.voices import silence

    asr = WhisperAsr()
    robot_tts = PiperTts(deterministic=True)
    lines = [
        (text, text in BACKCHANNEL_WORDS, silence(LEAD_S) + synthesize(text, name) + silence(0.8))
        for name in BARGE_VOICES
        for text in BACKCHANNEL_WORDS + BARGE_INS
    ]
    rows: dict[str, dict[str, Any]] = {}
    for label, fields in listener_policies().items():
        config = ListenerConfig(echo_cancellation=echo is not None, **fields)
        trials = asyncio.run(_session(lines, asr, robot_tts, config, echo, _dots(show)))
        rows[label] = _summary(trials)
        if show:
            print(f"\n{label}: {rows[label]}", file=sys.stderr)
    return rows


def _dots(show: bool) -> Callable[[str], None]:
    def progress(mark: str) -> None:
        if show:
            print(mark, end="", file=sys.stderr, flush=True)

    return progress


async def _alone(robot_pcm: bytes, asr: Any, config: Any, echo: Any) -> tuple[int, int, float]:
    """The robot's voice (16 kHz) played into a listener whose mic hears it through `echo`,
    on a simulated clock: (barge-ins, pauses, seconds of robot audio)."""
    from omni_agent.messages import AUDIO_SAMPLE_RATE, AudioChunk
    from omni_agent.speech.listener import Listener
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import RoomEcho
    from omni_agent.transport import VOICE, VOICE_HOLD, Bus

    bus = Bus()
    voice, holds = bus.subscribe(VOICE), bus.subscribe(VOICE_HOLD)
    room = RoomEcho(None, echo)
    step = AUDIO_SAMPLE_RATE * 20 // 1000 * 2
    quiet = bytes(step)
    barge_ins = paused = 0
    t0 = time.monotonic() + 1.0  # the simulated clock: robot and mic on the same stamps
    async with Listener(bus, VadConfig(), asr, config) as listener:
        for i, offset in enumerate(range(0, len(robot_pcm), step)):
            piece = robot_pcm[offset : offset + step]
            stamp = t0 + (i + 1) * 0.02
            listener.feed(AudioChunk(pcm=piece, source="robot", stamp=stamp))
            room.played(piece)
            listener.feed(AudioChunk(pcm=room.mix(quiet[: len(piece)]), stamp=stamp))
            await asyncio.sleep(0)
        for _ in range(100):  # the echo's tail and the last endpoint: 2 s of room
            stamp += 0.02
            listener.feed(AudioChunk(pcm=room.mix(quiet), stamp=stamp))
            await asyncio.sleep(0)
        # the verdicts on the last voices (ASR on its thread)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any("asr_done" not in t for t in listener.latency):
            await asyncio.sleep(0.05)
        while (activity := voice.get_nowait()) is not None:
            barge_ins += activity.speaking
        while (hold := holds.get_nowait()) is not None:
            paused += hold.hold
    return barge_ins, paused, len(robot_pcm) / 2 / AUDIO_SAMPLE_RATE


def run_alone(echo: Any, minutes: float, show: bool) -> dict[str, dict[str, Any]]:
    """Self-interruptions per hour of robot speech with nobody in the room."""
    from omni_agent.messages import AUDIO_SAMPLE_RATE
    from omni_agent.speech.asr import WhisperAsr
    from omni_agent.speech.listener import ListenerConfig
    from omni_agent.speech.pcm import resample
    from omni_agent.speech.tts import PiperTts
    from omni_agent.speech.voices import silence

    asr = WhisperAsr()
    tts = PiperTts(deterministic=True)
    said = [resample(tts.synthesize(s), tts.sample_rate, AUDIO_SAMPLE_RATE) for s in ROBOT_ALONE]
    pcm, i = b"", 0
    while len(pcm) / 2 / AUDIO_SAMPLE_RATE < minutes * 60:  # sentences with breaths between
        pcm += said[i % len(said)] + silence(0.25)
        i += 1
    guards = {
        "no guard": ListenerConfig(),
        "energy gate -30 dBFS (self_voice_gate_dbfs)": ListenerConfig(self_voice_gate_dbfs=-30),
        "echo cancellation (WebRTC AEC3, default)": ListenerConfig(echo_cancellation=True),
    }
    rows: dict[str, dict[str, Any]] = {}
    for label, config in guards.items():
        barge_ins, paused, seconds = asyncio.run(_alone(pcm, asr, config, echo))
        hours = seconds / 3600
        rows[label] = {
            "robot_speech_s": round(seconds),
            "self_interruptions": barge_ins,
            "self_interruptions_per_hour": round(barge_ins / hours),
            "pauses_per_hour": round(paused / hours),
        }
        if show:
            print(f"robot alone, {label}: {rows[label]}", file=sys.stderr)
    return rows


def print_report(report: dict[str, Any]) -> None:
    for key, title in (("over_the_robot", ""), ("over_the_robot_with_echo", "with echo, ")):
        for label, row in report.get(key, {}).items():
            r, p = row["barge_in_reaction_ms"], row["backchannel_pause_ms"]
            print(
                f"over the robot, {title}{label}: backchannels that stopped it "
                f"{row['backchannels_that_stopped_the_robot']}, that paused it "
                f"{row['backchannels_that_paused_it']} (median {p['median']} ms), barge-ins "
                f"{row['barge_ins_that_stopped_it']}, silent after median {r['median']} ms "
                f"(p90 {r['p90']})"
            )
    for label, row in report.get("robot_alone_with_echo", {}).items():
        print(
            f"robot alone with echo, {label}: {row['self_interruptions']} self-interruptions "
            f"in {row['robot_speech_s']} s ({row['self_interruptions_per_hour']} per hour), "
            f"{row['pauses_per_hour']} pauses per hour"
        )
