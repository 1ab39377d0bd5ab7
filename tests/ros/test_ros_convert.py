"""Conversions to and from standard ROS messages (no DDS participant is created here)."""

from __future__ import annotations

import array
import math

import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS message packages are not installed")

from geometry_msgs.msg import Twist
from std_msgs.msg import Int16MultiArray, String

from omni_agent.messages import AudioChunk, ImageFrame, Odometry, Pose2D
from ros_nodes import convert
from ros_nodes.convert import Rejected


def frame(width: int = 4, height: int = 2, encoding: str = "rgb8") -> ImageFrame:
    n = width * height * convert.CHANNELS[encoding]
    return ImageFrame(width=width, height=height, encoding=encoding, data=bytes(range(n)))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_image_round_trips_without_per_element_copies(encoding: str) -> None:
    msg = convert.to_ros_image(frame(encoding=encoding))
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    back = convert.from_ros_image(msg)
    assert (back.width, back.height, back.encoding, back.data) == (
        4,
        2,
        encoding,
        frame(encoding=encoding).data,
    )


def test_image_row_padding_is_removed() -> None:
    msg = convert.to_ros_image(frame())
    rows = [bytes(msg.data[r * 12 : (r + 1) * 12]) + b"\xff" * 4 for r in range(2)]
    msg.step = 16
    msg.data = array.array("B", b"".join(rows))
    assert convert.from_ros_image(msg).data == frame().data


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("encoding", "yuv422", "not supported"),
        ("step", 5, "shorter than"),
        ("step", 13, r"step\*height"),
        ("width", 0, "empty"),
    ],
)
def test_bad_images_are_rejected_with_a_reason(field: str, value: object, reason: str) -> None:
    msg = convert.to_ros_image(frame())
    setattr(msg, field, value)
    with pytest.raises(Rejected, match=reason):
        convert.from_ros_image(msg)


def test_compressed_image_round_trip() -> None:
    pytest.importorskip("cv2")
    big = ImageFrame(width=32, height=16, encoding="rgb8", data=bytes(32 * 16 * 3))
    back = convert.from_ros_compressed(convert.to_ros_compressed(big))
    assert (back.width, back.height, back.encoding) == (32, 16, "rgb8")


def test_audio_layout_is_documented_and_round_trips() -> None:
    chunk = AudioChunk(pcm=b"\x01\x00\xff\x7f\x00\x80")
    msg = convert.to_ros_audio(chunk)
    assert msg.layout.dim[0].label == "pcm_s16_mono_16000"
    assert list(msg.data) == [1, 32767, -32768]
    assert convert.from_ros_audio(msg).pcm == chunk.pcm


def test_audio_without_layout_is_16khz() -> None:
    msg = Int16MultiArray()
    msg.data = array.array("h", [0, 1])
    assert convert.from_ros_audio(msg).sample_rate == 16000


def test_oversized_and_wrong_rate_audio_is_rejected() -> None:
    long = convert.to_ros_audio(AudioChunk(pcm=bytes(2 * 16000 * 2)))
    with pytest.raises(Rejected, match="longer than"):
        convert.from_ros_audio(long, max_seconds=1.0)
    fast = convert.to_ros_audio(AudioChunk(pcm=bytes(4), sample_rate=24000))
    with pytest.raises(Rejected, match="24000 Hz"):
        convert.from_ros_audio(fast)
    assert convert.from_ros_audio(fast, expected_rate=None).sample_rate == 24000


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_twist_with_nan_or_inf_is_rejected(bad: float) -> None:
    msg = Twist()
    msg.linear.y = bad
    with pytest.raises(Rejected, match="NaN or infinite"):
        convert.from_ros_twist(msg)
    with pytest.raises(Rejected):
        convert.to_ros_twist(bad, 0.0)


def test_pose_and_odometry_keep_the_heading() -> None:
    pose = Pose2D(x=1.5, y=-2.0, yaw=2.5)
    back = convert.from_ros_pose(convert.to_ros_pose(pose))
    assert (back.x, back.y) == (1.5, -2.0) and back.yaw == pytest.approx(2.5)
    odom = convert.from_ros_odometry(
        convert.to_ros_odometry(Odometry(pose=pose, linear=0.3, angular=-0.1))
    )
    assert odom.pose.yaw == pytest.approx(2.5) and odom.linear == pytest.approx(0.3)


def test_goal_with_a_broken_quaternion_is_rejected() -> None:
    msg = convert.to_ros_pose(Pose2D(x=0.0, y=0.0))
    msg.pose.orientation.w = 3.0
    with pytest.raises(Rejected, match="unit quaternion"):
        convert.from_ros_pose(msg)


def test_scene_and_utterance_text() -> None:
    scene = convert.from_ros_scene(String(data='{"place": "kitchen", "things": []}'))
    assert scene.place == "kitchen"
    with pytest.raises(Rejected):
        convert.from_ros_scene(String(data="not json"))
    assert convert.from_ros_utterance(String(data=" hi ")).text == "hi"


def test_each_typed_utterance_from_ros_is_a_turn_of_its_own() -> None:
    first = convert.from_ros_utterance(String(data="hello"))
    again = convert.from_ros_utterance(String(data="hello"))
    assert first.turn_id and again.turn_id and first.turn_id != again.turn_id
