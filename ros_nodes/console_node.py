"""console_node: type to the robot, read what it says, see its state (for the ROS sim).

Each line on stdin is published on /user/utterance; /speech/text and /agent/state are
printed. `python -m ros_nodes.run sim` runs it in the foreground.

It is the sim's e-stop: the state goes out latched on /estop and a heartbeat on
/estop/heartbeat, whose silence (this process gone) stops the robot at action_node. It
releases once, when it first hears the gate (its operator is at the keyboard): the gate
only opens on a release newer than its own start, so a release sent before the gate was
up would not count. A gate that restarts later stays engaged until '/release' is typed;
'/estop' engages it.
"""

from __future__ import annotations

import sys
import threading

from rclpy.node import Node
from std_msgs.msg import Bool, Header, String

from ros_nodes import qos
from ros_nodes.runtime import main_for, publish


class ConsoleNode(Node):
    def __init__(self) -> None:
        super().__init__("console_node")
        self.say = self.create_publisher(String, qos.USER_TEXT, qos.COMMAND)
        self.estop = self.create_publisher(Bool, qos.ESTOP, qos.ESTOP_STATE)
        self.beat = self.create_publisher(Header, qos.ESTOP_HEARTBEAT, qos.COMMAND)
        self.gate_seen = False
        self.create_subscription(String, qos.GATE_STATUS, self._on_gate, qos.ESTOP_STATE)
        self.create_timer(0.2, self._beat)
        self.create_subscription(String, qos.SPEECH_TEXT, self._on_speech, qos.COMMAND)
        self.create_subscription(String, qos.STATE, self._on_state, qos.LATCHED)
        threading.Thread(target=self._read, name="stdin", daemon=True).start()
        print("type to talk; '/estop' and '/release' toggle the e-stop; Ctrl-D quits", flush=True)

    def _beat(self) -> None:
        publish(self, self.beat, Header())

    def _on_gate(self, msg: String) -> None:
        if not self.gate_seen:
            self.gate_seen = True
            publish(self, self.estop, Bool(data=False))
        print(f"  [gate: {msg.data}]", flush=True)

    def _on_speech(self, msg: String) -> None:
        print(f"robot: {msg.data}", flush=True)

    def _on_state(self, msg: String) -> None:
        print(f"  [{msg.data}]", flush=True)

    def _read(self) -> None:
        for line in sys.stdin:
            text = line.strip()
            if text in ("/estop", "/release"):
                publish(self, self.estop, Bool(data=text == "/estop"))
            elif text:
                publish(self, self.say, String(data=text))
        self.context.try_shutdown()


def main() -> int:
    return main_for(ConsoleNode)


if __name__ == "__main__":
    raise SystemExit(main())
