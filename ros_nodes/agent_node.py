"""agent_node: hosts the agent loop on ROS 2 by bridging ROS topics to the in-process Bus.

The agent core (omni_agent) never imports rclpy: it reads and writes Bus topics whose
names are the ROS topic names. This node converts each incoming ROS message once, in the
executor thread, and hands the typed message to the asyncio loop; Bus messages the agent
publishes go back out as standard ROS messages. The Robot protocol is `RosRobot`, which
publishes Twist/PoseStamped to the action_node gate.

The agent itself is an async "host" function `host(bus, robot, node) -> None` named by the
`agent` parameter ("package.module:function" or "/path/file.py:function"); the default
runs the whole product as omni_agent.runtime assembles it (ros_nodes.agent_host:run_agent):
long-term memory that survives a restart, speech, speaker identification.

Forgetting a person is a topic pair, not a service: no standard service type takes a
string (std_srvs has Empty, SetBool and Trigger), and a custom .srv would need a ROS
build the PyPI wheels do not have. A name on `~/forget_person` (std_msgs/String) is
answered by one line on `~/forget_person/result`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import math
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, Twist
from nav_msgs.msg import Odometry as RosOdometry
from pydantic import BaseModel
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Int16MultiArray, String

# imported here, on the main thread: the executor thread names people while the host
# imports memory on the event loop, and one package imported from two threads at once
# can deadlock on its circular imports
from memory.names import InvalidPersonName, person_name
from omni_agent import transport
from omni_agent.messages import EStop, Odometry, Pose2D, UserUtterance
from omni_agent.safety import SiteMap
from omni_agent.transport import Bus, Topic
from ros_nodes import convert, qos
from ros_nodes.robot import MotionLimits, RosRobot
from ros_nodes.runtime import ExternalShutdownException, NodeExit, init, publish

if TYPE_CHECKING:
    from omni_agent.live import LiveView
    from omni_agent.speech.speaker import SpeakerId

M = TypeVar("M", bound=BaseModel)
Host = Callable[[Bus, RosRobot, "AgentNode"], Coroutine[Any, Any, None]]
DEFAULT_HOST = "ros_nodes.agent_host:run_agent"


class AgentNode(Node):
    def __init__(self, bus: Bus | None = None) -> None:
        super().__init__("agent_node")
        p = self.declare_parameter
        self.host_spec = str(p("agent", DEFAULT_HOST).value)
        self.config_file = str(p("config_file", "").value)
        self.speech = str(p("speech", "text").value)
        """text: utterances arrive as text; voice: VAD + ASR on /audio/mic, TTS out."""
        self.world = str(p("world", "").value)
        """A site YAML (or "default", omni_agent/site.py): its places and landmarks become known
        targets."""
        self.max_audio_s = float(p("max_audio_chunk_s", 1.0).value)
        use_compressed = bool(p("use_compressed", False).value)
        self.live_view = bool(p("live_view", False).value)
        """Serve the agent to Foxglove (docs/live.md): camera, map, transcript, state..."""
        self.live_host = str(p("live_host", "127.0.0.1").value)
        self.live_port = int(p("live_port", 8765).value)
        self.live: LiveView | None = None
        """The open live view while serving; hosts pass it to the Agent as on_event."""
        self.memory_db = str(p("memory_db", "").value)
        """The SQLite memory file (empty: the config file's memory.path)."""
        self.memory_url = str(p("memory_url", "").value)
        """A fleet's PostgreSQL memory (empty: the config file's memory.url)."""
        self.speaker_id = bool(p("speaker_id", True).value)
        """speech voice: name each utterance's person by voice (docs/speech.md)."""
        self.voiceprints = str(p("voiceprints", "").value)
        self.speaker_threshold = float(p("speaker_threshold", 0.85).value)
        self.speaker: SpeakerId | None = None
        """Set by the host while speaker identification runs."""
        self.person_hold_s = float(p("person_hold_s", 10.0).value)
        """How long a name from person_topic stands for the typed utterances that follow."""
        self._named: tuple[str, float] | None = None
        # an external face-recognition node may name the person instead: a name, or JSON
        # {"person": ..., "confidence": ...}, on std_msgs/String
        self.create_subscription(
            String, str(p("person_topic", "/person/identified").value), self._on_person,
            qos.COMMAND,
        )  # fmt: skip
        self.forget: Callable[[str], Awaitable[str]] | None = None
        """Set by the host while it runs: forgets a person, returns one line."""
        self.create_subscription(String, "~/forget_person", self._on_forget, qos.COMMAND)
        self.forget_result = self.create_publisher(String, "~/forget_person/result", qos.COMMAND)
        self.bus = bus or Bus()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.robot = RosRobot(
            self._send_velocity,
            self._send_goal,
            limits=MotionLimits(
                goal_tolerance_m=float(p("goal_tolerance_m", 0.25).value),
                goal_timeout_s=float(p("goal_timeout_s", 60.0).value),
            ),
        )
        self.dropped = 0
        self._last_drop_log: dict[tuple[str, str], float] = {}
        self.received: dict[str, int] = {}

        # ROS -> Bus
        if use_compressed:
            self._bridge_in(
                CompressedImage,
                qos.CAMERA_COMPRESSED,
                qos.SENSOR,
                transport.CAMERA,
                convert.from_ros_compressed,
            )
        else:
            self._bridge_in(Image, qos.CAMERA, qos.SENSOR, transport.CAMERA, convert.from_ros_image)
        self._bridge_in(
            Int16MultiArray,
            qos.MIC,
            qos.SENSOR,
            transport.MIC,
            lambda m: convert.from_ros_audio(m, max_seconds=self.max_audio_s),
        )
        self._bridge_in(
            RosOdometry, qos.ODOM, qos.SENSOR, transport.ODOM, convert.from_ros_odometry
        )
        self._bridge_in(String, qos.SCENE, qos.SENSOR, transport.SCENE, convert.from_ros_scene)
        # latched: an agent that starts late still learns the current e-stop state
        self._bridge_in(Bool, qos.ESTOP, qos.ESTOP_STATE, transport.ESTOP, convert.from_ros_bool)
        # the map-frame pose: without it the robot refuses to move (RosRobot.localized)
        map_frame = str(p("map_frame", "map").value)
        self.create_subscription(
            PoseWithCovarianceStamped,
            str(p("localization_topic", qos.LOCALIZATION).value),
            lambda m: self._on_localization(m, map_frame),
            10,
        )
        self._bridge_in(
            String,
            qos.USER_TEXT,
            qos.COMMAND,
            transport.USER_TEXT,
            lambda m: self._name_typed(convert.from_ros_utterance(m)),
        )

        # Bus -> ROS
        self.cmd_pub = self.create_publisher(
            Twist, str(p("cmd_vel_topic", qos.AGENT_CMD_VEL).value), qos.COMMAND
        )
        self.goal_pub = self.create_publisher(
            PoseStamped, str(p("goal_topic", qos.AGENT_GOAL).value), qos.COMMAND
        )
        self._outputs: list[tuple[Topic[Any], Any, Callable[[Any], Any]]] = [
            (
                transport.SPEECH_TEXT,
                self.create_publisher(String, qos.SPEECH_TEXT, qos.COMMAND),
                convert.to_ros_speech,
            ),
            (
                transport.SPEECH_AUDIO,
                self.create_publisher(Int16MultiArray, qos.SPEECH_AUDIO, qos.COMMAND),
                convert.to_ros_audio,
            ),
            (
                transport.STATE,
                self.create_publisher(String, qos.STATE, qos.LATCHED),
                convert.to_ros_state,
            ),
            (
                transport.CMD_VEL,
                self.cmd_pub,
                lambda v: convert.to_ros_twist(v.linear, v.angular),
            ),
        ]

    # ROS -> Bus ------------------------------------------------------------------------

    def _bridge_in(
        self,
        ros_type: Any,
        name: str,
        profile: Any,
        topic: Topic[M],
        conv: Callable[[Any], M],
    ) -> None:
        def callback(msg: Any) -> None:
            try:
                typed = conv(msg)
            except ValueError as why:  # Rejected, or pydantic's ValidationError
                self._drop(name, str(why).splitlines()[0])
                return
            self.received[name] = self.received.get(name, 0) + 1
            self._on_typed(topic, typed)
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self.bus.publish, topic, typed)

        self.create_subscription(ros_type, name, callback, profile)

    def _drop(self, topic: str, reason: str) -> None:
        """One log line per distinct reason per second: a flood of bad input stays readable."""
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log.get((topic, reason), -math.inf) >= 1.0:
            self._last_drop_log[(topic, reason)] = now
            self.get_logger().warning(f"{topic}: {reason}")

    def _on_typed(self, topic: Topic[Any], msg: BaseModel) -> None:
        """Immediate reactions that must not wait for the agent loop."""
        if isinstance(msg, Odometry):
            self.robot.update_pose(msg.pose)
        elif isinstance(msg, EStop):
            self.robot.estop = msg.engaged
            if msg.engaged and self.loop is not None:
                # Stop our own motion at once; the agent moves to SAFE_STOP from the Bus.
                asyncio.run_coroutine_threadsafe(self.robot.halt(), self.loop)

    def _on_localization(self, msg: PoseWithCovarianceStamped, map_frame: str) -> None:
        try:
            self.robot.update_map_pose(convert.from_ros_localization(msg, map_frame))
        except ValueError as why:
            self._drop(qos.LOCALIZATION, str(why).splitlines()[0])

    def _on_person(self, msg: Any) -> None:
        name, confidence = msg.data.strip(), 1.0
        if name.startswith("{"):
            try:
                seen = json.loads(name)
                name, confidence = str(seen["person"]).strip(), float(seen.get("confidence", 1))
            except (ValueError, KeyError, TypeError) as why:
                self._drop("person_topic", f"not a name or {{person, confidence}}: {why}")
                return
        try:  # the rule every store accepts names by: no control characters, not empty
            name = person_name(name)
        except InvalidPersonName as why:
            self._drop("person_topic", f"{why}; dropped")
            return
        self._named = (name, time.monotonic())
        if self.speaker is not None:
            self.speaker.seen(name, confidence)

    def _name_typed(self, utt: UserUtterance) -> UserUtterance:
        """A typed utterance is said by the person person_topic named last, for a while."""
        if utt.person is None and self._named is not None:
            name, since = self._named
            if time.monotonic() - since <= self.person_hold_s:
                return utt.model_copy(update={"person": name})
        return utt

    def _on_forget(self, msg: Any) -> None:
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._forget(msg.data), self.loop)

    async def _forget(self, person: str) -> None:
        if self.forget is None:
            line = "the agent is not running: nothing forgotten"
        else:
            try:
                line = await self.forget(person)
            except Exception as exc:  # a memory that cannot be written: say so, keep running
                line = f"could not forget {person.strip()}: {exc}"
        self.get_logger().info(line)
        publish(self, self.forget_result, String(data=line))

    # Bus -> ROS ------------------------------------------------------------------------

    def _send_velocity(self, linear: float, angular: float) -> None:
        try:
            publish(self, self.cmd_pub, convert.to_ros_twist(linear, angular))
        except convert.Rejected as why:
            self.get_logger().error(str(why))

    def _send_goal(self, pose: Pose2D) -> None:
        publish(self, self.goal_pub, convert.to_ros_pose(pose))

    async def _forward(self, topic: Topic[Any], pub: Any, conv: Callable[[Any], Any]) -> None:
        async for msg in self.bus.subscribe(topic):
            try:
                publish(self, pub, conv(msg))
            except ValueError as why:
                self.get_logger().warning(f"{topic.name}: {why}", throttle_duration_sec=1.0)

    # hosting ---------------------------------------------------------------------------

    def open_live_view(self, site: SiteMap | None = None) -> LiveView | None:
        """The Foxglove live view when the live_view parameter is set (call in the loop)."""
        if not self.live_view:
            return None
        from omni_agent.errors import UserError
        from omni_agent.live import LiveView, MapView

        try:
            view = LiveView(host=self.live_host, port=self.live_port, name="agent_node")
        except UserError as exc:
            raise NodeExit(f"agent_node: {exc}") from None
        view.set_map(MapView(site=site or SiteMap()))
        view.follow(self.bus)
        self.get_logger().info(f"live view for Foxglove on {view.address}")
        self.live = view
        return view

    async def serve(self, host: Host) -> None:
        """Spin ROS in a thread and run `host` on this loop until either one ends."""
        self.loop = asyncio.get_running_loop()
        ros_done = asyncio.Event()
        executor = SingleThreadedExecutor()
        executor.add_node(self)

        def spin() -> None:
            try:
                executor.spin()
            except (KeyboardInterrupt, ExternalShutdownException):
                pass
            finally:
                assert self.loop is not None
                self.loop.call_soon_threadsafe(ros_done.set)

        thread = threading.Thread(target=spin, name="ros-spin", daemon=True)
        thread.start()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.add_signal_handler(sig, ros_done.set)
        forwards = [asyncio.create_task(self._forward(*out)) for out in self._outputs]
        agent = asyncio.create_task(host(self.bus, self.robot, self))
        stopped = asyncio.create_task(ros_done.wait())
        try:
            await asyncio.wait({agent, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if agent.done() and agent.exception() is not None:
                raise agent.exception()  # type: ignore[misc]
        finally:
            for task in (*forwards, agent, stopped):
                task.cancel()
            await asyncio.gather(*forwards, agent, stopped, return_exceptions=True)
            with contextlib.suppress(Exception):  # the context may already be gone
                self._send_velocity(0.0, 0.0)  # never leave the robot driving
            executor.shutdown(timeout_sec=1.0)
            thread.join(timeout=2.0)
            if self.live is not None:
                self.live.close()
                self.live = None


def load_host(spec: str) -> Host:
    """'pkg.module:function' or '/path/to/file.py:function' -> the host coroutine function."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise NodeExit(f"agent parameter {spec!r} must look like 'package.module:function'")
    try:
        if target.endswith(".py"):
            path = Path(target)
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            if mod_spec is None or mod_spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        host: Host = getattr(module, attr)
    except (ImportError, AttributeError, OSError) as exc:
        raise NodeExit(f"cannot load agent host {spec!r}: {exc}") from None
    return host


def main(args: list[str] | None = None) -> int:
    import rclpy

    init(args, signals=False)  # serve() turns SIGINT/SIGTERM into a clean stop
    node: AgentNode | None = None
    try:
        node = AgentNode()
        host = load_host(node.host_spec)
        asyncio.run(node.serve(host))
    except NodeExit as stop:
        print(stop)
        return stop.status
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
