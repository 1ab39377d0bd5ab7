"""speaker_node: plays /speech/audio (std_msgs/Int16MultiArray, any rate in its layout).

Playback runs in its own thread behind a bounded queue, so a slow sound card never blocks
the executor. An engaged e-stop flushes what is queued, so the robot falls silent at once.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from rclpy.node import Node
from std_msgs.msg import Bool, Int16MultiArray

from ros_nodes import convert, qos
from ros_nodes.audio_device import open_pyaudio
from ros_nodes.runtime import main_for


class SpeakerNode(Node):
    def __init__(self) -> None:
        super().__init__("speaker_node")
        p = self.declare_parameter
        self.device = int(p("device_index", -1).value)
        self.pyaudio = open_pyaudio("speaker_node")
        self.pa = self.pyaudio.PyAudio()
        self.queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=500)
        self.create_subscription(Int16MultiArray, qos.SPEECH_AUDIO, self._on_audio, qos.COMMAND)
        self.create_subscription(Bool, qos.ESTOP, self._on_estop, qos.COMMAND)
        self.thread = threading.Thread(target=self._play, name="speaker", daemon=True)
        self.thread.start()

    def _on_audio(self, msg: Int16MultiArray) -> None:
        try:
            chunk = convert.from_ros_audio(msg, max_seconds=30.0, expected_rate=None)
        except convert.Rejected as why:
            self.get_logger().warning(str(why), throttle_duration_sec=1.0)
            return
        try:
            self.queue.put_nowait((chunk.sample_rate, chunk.pcm))
        except queue.Full:
            self.get_logger().warning("speech queue full; chunk dropped", throttle_duration_sec=1.0)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self._flush()

    def _flush(self) -> None:
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                return

    def _play(self) -> None:
        stream: Any = None
        rate = 0
        while True:
            item = self.queue.get()
            if item is None:
                break
            chunk_rate, pcm = item
            if stream is None or chunk_rate != rate:
                if stream is not None:
                    stream.close()
                rate = chunk_rate
                stream = self.pa.open(
                    format=self.pyaudio.paInt16,
                    channels=1,
                    rate=rate,
                    output=True,
                    output_device_index=None if self.device < 0 else self.device,
                )
            stream.write(pcm)
        if stream is not None:
            stream.close()

    def destroy_node(self) -> None:
        self._flush()
        self.queue.put(None)
        self.thread.join(timeout=2.0)
        self.pa.terminate()
        super().destroy_node()


def main() -> int:
    return main_for(SpeakerNode)


if __name__ == "__main__":
    raise SystemExit(main())
