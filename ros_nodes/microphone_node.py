"""microphone_node: pyaudio capture -> /audio/mic (std_msgs/Int16MultiArray).

Topic format (see convert.py): 16 kHz, mono, signed 16-bit samples, `chunk_ms` per
message (20 ms = 320 samples by default), sensor-data QoS. With `wav_file` set it
streams that file in real time instead (looped), which needs no sound card.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rclpy.node import Node
from std_msgs.msg import Int16MultiArray

from omni_agent.media import read_wav
from omni_agent.messages import AUDIO_SAMPLE_RATE, AudioChunk
from ros_nodes import convert, qos
from ros_nodes.audio_device import open_pyaudio
from ros_nodes.runtime import NodeExit, main_for, publish


class MicrophoneNode(Node):
    def __init__(self) -> None:
        super().__init__("microphone_node")
        p = self.declare_parameter
        self.chunk = int(AUDIO_SAMPLE_RATE * int(p("chunk_ms", 20).value) / 1000)
        device = int(p("device_index", -1).value)
        wav_file = str(p("wav_file", "").value)
        self.pub = self.create_publisher(Int16MultiArray, qos.MIC, qos.SENSOR)
        self._stop = threading.Event()
        self.stream: Any = None
        self.pa: Any = None
        if wav_file:
            self._start_file(Path(wav_file))
        else:
            self._start_device(device)

    def _emit(self, pcm: bytes) -> None:
        publish(self, self.pub, convert.to_ros_audio(AudioChunk(pcm=pcm)))

    def _start_device(self, device: int) -> None:
        pyaudio = open_pyaudio("microphone_node")
        self.pa = pyaudio.PyAudio()

        def on_audio(data: bytes, frames: int, info: Any, status: int) -> tuple[None, int]:
            self._emit(data)
            return None, pyaudio.paContinue

        try:
            self.stream = self.pa.open(
                format=pyaudio.paInt16,
                channels=1,
                rate=AUDIO_SAMPLE_RATE,
                input=True,
                input_device_index=None if device < 0 else device,
                frames_per_buffer=self.chunk,
                stream_callback=on_audio,
            )
        except OSError as exc:
            raise NodeExit(f"microphone_node: cannot open input device {device}: {exc}") from None

    def _start_file(self, path: Path) -> None:
        try:
            pcm, rate = read_wav(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise NodeExit(f"microphone_node: cannot read {path}: {exc}") from None
        if rate != AUDIO_SAMPLE_RATE:
            raise NodeExit(f"microphone_node: {path} is {rate} Hz; resample to 16000 Hz")
        step = 2 * self.chunk

        def pump() -> None:
            period = self.chunk / AUDIO_SAMPLE_RATE
            due = time.monotonic()
            while not self._stop.is_set():
                for start in range(0, len(pcm) - step + 1, step):
                    if self._stop.is_set():
                        return
                    self._emit(pcm[start : start + step])
                    due += period
                    self._stop.wait(max(0.0, due - time.monotonic()))

        threading.Thread(target=pump, name="wav-mic", daemon=True).start()

    def destroy_node(self) -> None:
        self._stop.set()
        if self.stream is not None:
            self.stream.stop_stream()
            self.stream.close()
        if self.pa is not None:
            self.pa.terminate()
        super().destroy_node()


def main() -> int:
    return main_for(MicrophoneNode)


if __name__ == "__main__":
    raise SystemExit(main())
