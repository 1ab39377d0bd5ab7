"""QoS chosen by name, and the topic names (the same as omni_agent.transport's).

Camera and audio use sensor-data QoS (best effort, keep last 5): a late frame is worth
less than the next one, and a reliable writer under back-pressure makes `publish()`
raise. Commands, e-stop and goals are reliable so none is lost. The interaction state is
latched (transient local) so a dashboard that starts late sees the current state.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from omni_agent import transport

SENSOR = qos_profile_sensor_data
COMMAND = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# Depth 10, not 1: transitions come in bursts (THINKING -> SPEAKING -> ACTING within a
# millisecond) and depth 1 drops some on both sides. A late joiner gets the last few
# transitions; the newest is the current state.
# The e-stop state is latched and reliable: a node that starts (or restarts) late gets the
# current state from the e-stop publisher at once, so a respawned gate cannot forget an
# engaged e-stop. Depth 1: only the newest state matters.
ESTOP_STATE = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

EVENTS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""The agent's event stream: deep, so a burst (a turn's states and actions) is never cut."""

CAMERA = transport.CAMERA.name  # sensor_msgs/Image
CAMERA_COMPRESSED = CAMERA + "/compressed"  # sensor_msgs/CompressedImage
SCENE = transport.SCENE.name  # std_msgs/String, SceneDescription as JSON
MIC = transport.MIC.name  # std_msgs/Int16MultiArray, 16 kHz mono
ODOM = transport.ODOM.name  # nav_msgs/Odometry
ESTOP = transport.ESTOP.name  # std_msgs/Bool, latched (ESTOP_STATE)
ESTOP_HEARTBEAT = "/estop/heartbeat"  # std_msgs/Header, the e-stop publisher is alive
GATE_STATUS = "/action_node/status"  # std_msgs/String, latched: "open" or why it blocks
LOCALIZATION = "/amcl_pose"  # geometry_msgs/PoseWithCovarianceStamped, map frame
USER_TEXT = transport.USER_TEXT.name  # std_msgs/String
SPEECH_TEXT = transport.SPEECH_TEXT.name  # std_msgs/String
SPEECH_AUDIO = transport.SPEECH_AUDIO.name  # std_msgs/Int16MultiArray
STATE = transport.STATE.name  # std_msgs/String, latched
AGENT_EVENTS = "/agent/events"  # std_msgs/String, one AgentEvent as JSON (EVENTS)
CMD_VEL = transport.CMD_VEL.name  # geometry_msgs/Twist, to the base (gated)
AGENT_CMD_VEL = "/agent/cmd_vel"  # geometry_msgs/Twist, agent -> action_node gate
AGENT_GOAL = "/agent/goal"  # geometry_msgs/PoseStamped, agent -> action_node gate
GOAL_POSE = "/goal_pose"  # geometry_msgs/PoseStamped, Nav2's bt_navigator input
