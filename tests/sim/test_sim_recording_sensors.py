"""Recordings carry the robot's sensors: camera frames, the semantic view, mic and voice."""

from __future__ import annotations

import itertools
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omni_agent.config import Config
from omni_agent.messages import SceneDescription
from omni_agent.transport import Bus
from sim.clock import EPOCH, SimClock
from sim.instant_brain import instant_brain
from sim.render import render
from sim.robot import SimRobot
from sim.runner import EpisodeResult, run_episode
from sim.scenario import Scenario
from sim.world import World

pytest.importorskip("rosbags")

from sim.recording import McapRecorder

NAVIGATION = Path("sim/scenarios/navigation.yaml")


def read_topic(bag: Path, topic: str) -> list[tuple[int, Any]]:
    """(log time in ns, message) on `topic`, read with plain rosbags as any tool would."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [
            (t, store.deserialize_cdr(raw, conn.msgtype))
            for conn, t, raw in reader.messages(connections=conns)
        ]


async def record_text_episode(
    tmp_path: Path, scenario: Scenario, **recorder: Any
) -> tuple[Path, SimRobot]:
    world = World.load(scenario.world) if scenario.world else World.load()
    bus, clock = Bus(), SimClock()
    start = world.places[scenario.start] if scenario.start else None
    robot = SimRobot(world, bus, start, clock=clock)
    bag = tmp_path / "episode-bag"
    sink = McapRecorder(bag, scenario, **recorder)
    config = Config()
    async with instant_brain(config) as brain:
        await run_episode(config, scenario, brain, bus=bus, clock=clock, robot=robot, sinks=[sink])
    sink.close()
    return bag, robot


def pixels(msg: Any) -> np.ndarray:
    return np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, 3)


async def test_recorded_camera_frames_are_the_images_the_robot_saw(tmp_path: Path) -> None:
    scenario = Scenario.load(NAVIGATION)
    bag, robot = await record_text_episode(tmp_path, scenario)
    frames = read_topic(bag, "/camera/image_raw")
    assert len(frames) >= 4  # the start, then the view after each of three drives
    seen = [render(robot.world, pose) for _, pose in robot.trail]
    for t, msg in frames:
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 160, 120, 480)
        assert msg.header.frame_id == "camera"
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == t
        assert any(np.array_equal(pixels(msg), image) for image in seen)
    assert np.array_equal(pixels(frames[0][1]), seen[0])
    assert np.array_equal(pixels(frames[-1][1]), render(robot.world, robot.pose))
    assert not np.array_equal(pixels(frames[0][1]), pixels(frames[-1][1]))
    # stamped in simulated time: the drives take longer than a minute in all
    assert (frames[-1][0] - frames[0][0]) / 1e9 > 60
    assert frames[0][0] >= EPOCH * 1e9

    scenes = read_topic(bag, "/camera/scene")
    last = SceneDescription.model_validate_json(scenes[-1][1].data)
    assert last.model_dump(exclude={"stamp"}) == robot.world.scene(robot.pose).model_dump(
        exclude={"stamp"}
    )


async def test_the_camera_rate_caps_recorded_frames_and_keeps_the_last(tmp_path: Path) -> None:
    scenario = Scenario.load(NAVIGATION)
    every, robot = await record_text_episode(tmp_path / "every", scenario, camera_hz=math.inf)
    assert len(read_topic(every, "/camera/image_raw")) == robot.frames
    capped, robot = await record_text_episode(tmp_path / "capped", scenario, camera_hz=1 / 60)
    frames = read_topic(capped, "/camera/image_raw")
    assert 2 <= len(frames) < robot.frames
    gaps = [(b - a) / 1e9 for (a, _), (b, _) in itertools.pairwise(frames)]
    assert all(gap >= 60 for gap in gaps[:-1])  # the last frame is written on close
    assert np.array_equal(pixels(frames[-1][1]), render(robot.world, robot.pose))


def pcm_of(messages: list[tuple[int, Any]]) -> bytes:
    return b"".join(np.asarray(m.data, "<i2").tobytes() for _, m in messages)


@pytest.mark.speech
async def test_a_spoken_episode_records_the_mic_and_the_robot_voice(tmp_path: Path) -> None:
    from omni_agent.speech.voices import silence
    from sim.voice import LEAD_IN_S, sim_voice, speech_unavailable

    if (why := speech_unavailable()) is not None:
        pytest.skip(why)
    said = "Hello! I'm Alice. What's your name?"
    scenario = Scenario.model_validate(
        {"name": "hello", "person": "Alice", "lines": [{"text": said}]}
    )
    bag, wav = tmp_path / "episode-bag", tmp_path / "robot.wav"
    recorder = McapRecorder(bag, scenario)
    config, bus = Config(), Bus()
    async with (
        instant_brain(config) as brain,
        sim_voice(bus, wav, brain.profile) as voice,
    ):
        result: EpisodeResult = await run_episode(
            config, scenario, brain, voice=voice, bus=bus, sinks=[recorder]
        )
        # the runner speaks line N with seed N, after a lead-in of the quiet room
        person = silence(LEAD_IN_S) + voice.person.say(said, seed=0)
    recorder.close()
    assert result.turns and result.turns[0].say

    mic, robot = read_topic(bag, "/audio/mic"), read_topic(bag, "/speech/audio")
    for _, msg in mic + robot:
        assert msg.layout.dim[0].label == "pcm_s16_mono_16000"
        assert msg.layout.dim[0].size == len(msg.data)
    heard = pcm_of(mic)
    assert heard.startswith(person)  # the quiet room, the line as spoken, the quiet room
    assert len(person) / 32_000 < len(heard) / 32_000 < result.wall_s
    with wave.open(str(wav)) as w:
        voice_s = w.getnframes() / w.getframerate()
    robot_s = len(pcm_of(robot)) / 32_000
    assert voice_s > 1.0 and robot_s == pytest.approx(voice_s, abs=0.05)
    # stamped so a player plays them in order and at their pace
    person_ends = mic[math.ceil(len(person) / 640) - 1][0]  # 20 ms mic chunks
    assert robot[0][0] > person_ends
    assert (robot[-1][0] - robot[0][0]) / 1e9 > 0.9 * robot_s - 0.1
