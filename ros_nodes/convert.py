"""Conversions between our typed messages and standard ROS 2 messages, in one place.

Every `from_ros_*` either returns a valid message or raises `Rejected` with a one-line
reason; nodes log that line and drop the message, so bad input never stops a node.

Audio topic format (/audio/mic and /speech/audio): `std_msgs/Int16MultiArray`, mono,
signed 16-bit samples (host order in the message; CDR carries the byte order on the
wire, so subscribers always read correct values). `layout.dim[0]` is
`{label: "pcm_s16_mono_<rate>", size: <samples>, stride: <samples>}`; the rate is 16000
on /audio/mic. A message with no layout is read as 16 kHz. A standard type was chosen
over audio_common_msgs because it needs no extra message package on the robot and
exists in the PyPI wheels; Int16 over UInt8 so tools like `ros2 topic echo` and
PlotJuggler show sample values, not bytes.

Image data is assigned as `array.array('B', bytes)`: rclpy takes that in one copy,
whereas numpy arrays or bytes are checked element by element (48 ms per VGA frame).
"""

from __future__ import annotations

import array
import math
import sys
import time
from typing import Any

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, Twist
from nav_msgs.msg import Odometry as RosOdometry
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Int16MultiArray, MultiArrayDimension, String

from omni_agent.messages import (
    AUDIO_SAMPLE_RATE,
    AudioChunk,
    EStop,
    ImageFrame,
    Odometry,
    Pose2D,
    SceneDescription,
    SpeechText,
    StateChange,
    UserUtterance,
    Velocity,
    now,
)

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
AUDIO_LABEL = "pcm_s16_mono_"
_BIG_ENDIAN_HOST = sys.byteorder == "big"


class Rejected(ValueError):
    """An incoming message that cannot be used; the text is the one-line log reason."""


# time ------------------------------------------------------------------------------


def ros_time(wall: float | None = None) -> Time:
    wall = time.time() if wall is None else wall
    sec = int(wall)
    return Time(sec=sec, nanosec=int((wall - sec) * 1e9))


def monotonic_stamp(stamp: Any) -> float:
    """A ROS header stamp (wall clock) as our monotonic clock, keeping its age.

    A zero stamp (publisher did not set it) means "now". The age is clamped at zero so
    clock skew between machines can never produce messages from the future.
    """
    wall = stamp.sec + stamp.nanosec * 1e-9
    if wall <= 0:
        return now()
    return now() - max(0.0, time.time() - wall)


def _finite(name: str, *values: float) -> None:
    if not all(math.isfinite(v) for v in values):
        raise Rejected(f"{name} has NaN or infinite values; dropped")


# images ----------------------------------------------------------------------------


def to_ros_image(frame: ImageFrame, frame_id: str = "camera", wall: float | None = None) -> Image:
    msg = Image()
    msg.header.stamp = ros_time(wall)
    msg.header.frame_id = frame_id
    msg.width = frame.width
    msg.height = frame.height
    msg.encoding = frame.encoding
    msg.is_bigendian = 0
    msg.step = frame.width * CHANNELS[frame.encoding]
    msg.data = array.array("B", frame.data)  # one memcpy; see the module docstring
    return msg


def image_from_buffer(
    buf: bytes | memoryview, width: int, height: int, encoding: str = "rgb8", **header: Any
) -> Image:
    """An Image straight from a packed pixel buffer (camera capture, benchmarks)."""
    if encoding not in CHANNELS:
        raise Rejected(f"unsupported encoding {encoding!r}")
    msg = Image()
    msg.header.stamp = ros_time(header.get("wall"))
    msg.header.frame_id = header.get("frame_id", "camera")
    msg.width, msg.height, msg.encoding = width, height, encoding
    msg.step = width * CHANNELS[encoding]
    msg.data = array.array("B", buf)
    return msg


def from_ros_image(msg: Image) -> ImageFrame:
    channels = CHANNELS.get(msg.encoding)
    if channels is None:
        raise Rejected(
            f"image encoding {msg.encoding!r} is not supported (use rgb8, bgr8 or mono8); dropped"
        )
    if msg.width <= 0 or msg.height <= 0:
        raise Rejected(f"image size {msg.width}x{msg.height} is empty; dropped")
    row = msg.width * channels
    if msg.step < row:
        raise Rejected(f"image step {msg.step} is shorter than a {row}-byte row; dropped")
    data = bytes(msg.data)  # array.array -> bytes: one copy
    if len(data) != msg.step * msg.height:
        raise Rejected(
            f"image data has {len(data)} bytes, step*height is {msg.step * msg.height}; dropped"
        )
    if msg.step != row:  # drop the row padding
        data = b"".join(data[r * msg.step : r * msg.step + row] for r in range(msg.height))
    # Sizes were checked above, so skip pydantic's second pass over 1 MB of pixels.
    return ImageFrame.model_construct(
        stamp=monotonic_stamp(msg.header.stamp),
        width=msg.width,
        height=msg.height,
        encoding=msg.encoding,
        data=data,
    )


def to_ros_compressed(
    frame: ImageFrame, quality: int = 80, frame_id: str = "camera", wall: float | None = None
) -> CompressedImage:
    import cv2
    import numpy as np

    pixels = np.frombuffer(frame.data, np.uint8).reshape(
        frame.height, frame.width, CHANNELS[frame.encoding]
    )
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if frame.encoding == "rgb8" else pixels
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise Rejected("JPEG encoding failed; dropped")
    msg = CompressedImage()
    msg.header.stamp = ros_time(wall)
    msg.header.frame_id = frame_id
    # image_transport's convention: "<original encoding>; jpeg compressed bgr8"
    msg.format = f"{frame.encoding}; jpeg compressed bgr8"
    msg.data = array.array("B", jpeg.tobytes())
    return msg


def from_ros_compressed(msg: CompressedImage) -> ImageFrame:
    import cv2
    import numpy as np

    fmt = msg.format.lower()
    if not any(kind in fmt for kind in ("jpeg", "jpg", "png")):
        raise Rejected(f"compressed format {msg.format!r} is not jpeg or png; dropped")
    pixels = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise Rejected(f"compressed image ({len(msg.data)} bytes) does not decode; dropped")
    rgb = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    return ImageFrame(
        stamp=monotonic_stamp(msg.header.stamp),
        width=width,
        height=height,
        encoding="rgb8",
        data=rgb.tobytes(),
    )


# audio -----------------------------------------------------------------------------


def to_ros_audio(chunk: AudioChunk) -> Int16MultiArray:
    samples = array.array("h", chunk.pcm)  # pcm is little-endian
    if _BIG_ENDIAN_HOST:
        samples.byteswap()
    msg = Int16MultiArray()
    n = len(samples)
    msg.layout.dim = [
        MultiArrayDimension(label=f"{AUDIO_LABEL}{chunk.sample_rate}", size=n, stride=n)
    ]
    msg.data = samples
    return msg


def audio_rate(msg: Int16MultiArray) -> int:
    if not msg.layout.dim:
        return AUDIO_SAMPLE_RATE
    label = msg.layout.dim[0].label
    if not label.startswith(AUDIO_LABEL) or not label[len(AUDIO_LABEL) :].isdigit():
        raise Rejected(f"audio layout label {label!r} is not {AUDIO_LABEL}<rate>; dropped")
    return int(label[len(AUDIO_LABEL) :])


def from_ros_audio(
    msg: Int16MultiArray,
    max_seconds: float = 1.0,
    expected_rate: int | None = AUDIO_SAMPLE_RATE,
    source: str = "mic",
) -> AudioChunk:
    rate = audio_rate(msg)
    if expected_rate is not None and rate != expected_rate:
        raise Rejected(f"audio at {rate} Hz, this topic carries {expected_rate} Hz; dropped")
    if not 8000 <= rate <= 48000:
        raise Rejected(f"audio sample rate {rate} Hz is out of range; dropped")
    samples = msg.data
    if len(samples) > max_seconds * rate:
        raise Rejected(
            f"audio chunk of {len(samples)} samples is longer than {max_seconds:g} s; dropped"
        )
    if not isinstance(samples, array.array) or _BIG_ENDIAN_HOST:
        samples = array.array("h", samples)
    if _BIG_ENDIAN_HOST:
        samples.byteswap()
    return AudioChunk(pcm=samples.tobytes(), sample_rate=rate, source=source)


# motion ----------------------------------------------------------------------------


def to_ros_twist(linear: float, angular: float) -> Twist:
    _finite("velocity command", linear, angular)
    msg = Twist()
    msg.linear.x = float(linear)
    msg.angular.z = float(angular)
    return msg


def from_ros_twist(msg: Twist) -> Velocity:
    """A planar velocity; NaN/inf in any of the six components rejects the command."""
    lin, ang = msg.linear, msg.angular
    _finite("Twist", lin.x, lin.y, lin.z, ang.x, ang.y, ang.z)
    return Velocity(linear=lin.x, angular=ang.z)


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def to_ros_pose(pose: Pose2D, frame_id: str = "map", wall: float | None = None) -> PoseStamped:
    _finite("pose", pose.x, pose.y, pose.yaw)
    msg = PoseStamped()
    msg.header.stamp = ros_time(wall)
    msg.header.frame_id = frame_id
    msg.pose.position.x = float(pose.x)
    msg.pose.position.y = float(pose.y)
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = yaw_to_quaternion(pose.yaw)
    return msg


def from_ros_pose(msg: PoseStamped) -> Pose2D:
    p, q = msg.pose.position, msg.pose.orientation
    _finite("PoseStamped", p.x, p.y, p.z, q.x, q.y, q.z, q.w)
    if abs(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w - 1.0) > 0.01:
        raise Rejected("PoseStamped orientation is not a unit quaternion; dropped")
    return Pose2D(x=p.x, y=p.y, yaw=quaternion_to_yaw(q.x, q.y, q.z, q.w))


def to_ros_localization(pose: Pose2D, frame_id: str = "map") -> PoseWithCovarianceStamped:
    """A localizer's output (AMCL's /amcl_pose): the robot's pose in the map frame."""
    msg = PoseWithCovarianceStamped()
    msg.header.stamp = ros_time()
    msg.header.frame_id = frame_id
    msg.pose.pose = to_ros_pose(pose, frame_id).pose
    return msg


def from_ros_localization(msg: PoseWithCovarianceStamped, map_frame: str = "map") -> Pose2D:
    """The robot's map pose; a pose in any other frame cannot be checked against the
    site's zones (drawn in the map frame), so it is refused."""
    if msg.header.frame_id.lstrip("/") != map_frame:
        raise Rejected(
            f"localization pose is in frame {msg.header.frame_id!r}, not {map_frame!r}; dropped"
        )
    stamped = PoseStamped()
    stamped.pose = msg.pose.pose
    return from_ros_pose(stamped)


def to_ros_odometry(
    odom: Odometry, frame_id: str = "odom", child_frame_id: str = "base_link"
) -> RosOdometry:
    msg = RosOdometry()
    msg.header.stamp = ros_time()
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    msg.pose.pose.position.x = float(odom.pose.x)
    msg.pose.pose.position.y = float(odom.pose.y)
    q = msg.pose.pose.orientation
    q.x, q.y, q.z, q.w = yaw_to_quaternion(odom.pose.yaw)
    msg.twist.twist.linear.x = float(odom.linear)
    msg.twist.twist.angular.z = float(odom.angular)
    return msg


def from_ros_odometry(msg: RosOdometry) -> Odometry:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    t = msg.twist.twist
    _finite("Odometry", p.x, p.y, q.x, q.y, q.z, q.w, t.linear.x, t.angular.z)
    return Odometry(
        stamp=monotonic_stamp(msg.header.stamp),
        pose=Pose2D(x=p.x, y=p.y, yaw=quaternion_to_yaw(q.x, q.y, q.z, q.w)),
        linear=t.linear.x,
        angular=t.angular.z,
    )


# flags and text --------------------------------------------------------------------


def to_ros_bool(estop: EStop) -> Bool:
    return Bool(data=estop.engaged)


def from_ros_bool(msg: Bool) -> EStop:
    return EStop(engaged=bool(msg.data))


def to_ros_speech(speech: SpeechText) -> String:
    return String(data=speech.text)


def from_ros_speech(msg: String) -> SpeechText:
    return SpeechText(text=msg.data)


def to_ros_state(change: StateChange) -> String:
    """The state name only (e.g. SAFE_STOP): what dashboards and behaviour trees test."""
    return String(data=change.state)


def from_ros_utterance(msg: String, max_chars: int = 2000) -> UserUtterance:
    """/user/utterance carries typed text as plain std_msgs/String: every message is a
    turn of its own and gets a fresh turn id here. Heard utterances, their partial and
    final transcripts never cross ROS (the listener runs inside the agent node), so the
    ids that pair them stay on the agent's bus."""
    text = msg.data.strip()
    if not text:
        raise Rejected("empty user utterance; dropped")
    if len(text) > max_chars:
        raise Rejected(f"user utterance of {len(text)} chars exceeds {max_chars}; dropped")
    return UserUtterance(text=text)


def from_ros_scene(msg: String) -> SceneDescription:
    """/camera/scene carries a SceneDescription as JSON (the sim's semantic camera)."""
    try:
        return SceneDescription.model_validate_json(msg.data)
    except ValueError as exc:
        reason = str(exc).splitlines()[0]
        raise Rejected(f"scene is not a SceneDescription ({reason}); dropped") from None
