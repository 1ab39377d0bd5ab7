"""Runs inside the private namespace: camera_node on a video file, microphone_node on a
WAV file (and on a sound card, which needs PyAudio), probed from here; prints JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Int16MultiArray

from ros_nodes import convert, qos
from ros_nodes.graph import CAMERA, MICROPHONE, stop_processes
from ros_nodes.sandbox import assert_sandboxed


def make_media(folder: Path) -> tuple[Path, Path]:
    video = folder / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 30, (320, 240))
    for i in range(10):
        writer.write(np.full((240, 320, 3), 20 * i, np.uint8))
    writer.release()
    audio = folder / "speech.wav"
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.arange(16000, dtype="<i2").tobytes())
    return video, audio


def main() -> int:
    assert_sandboxed()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        video, audio = make_media(Path(tmp))
        procs = [
            subprocess.Popen(
                [
                    *CAMERA.command(),
                    *("-p", f"source:={video}", "-p", "width:=160", "-p", "height:=120"),
                    *("-p", "publish_compressed:=true"),
                ]
            ),
            subprocess.Popen([*MICROPHONE.command(), "-p", f"wav_file:={audio}"]),
        ]
        no_card = subprocess.run(MICROPHONE.command(), capture_output=True, text=True, timeout=30)
        rclpy.init()
        node = Node("device_probe")
        images: list[Image] = []
        jpegs: list[CompressedImage] = []
        chunks: list[Int16MultiArray] = []
        node.create_subscription(Image, qos.CAMERA, images.append, qos.SENSOR)
        node.create_subscription(CompressedImage, qos.CAMERA_COMPRESSED, jpegs.append, qos.SENSOR)
        node.create_subscription(Int16MultiArray, qos.MIC, chunks.append, qos.SENSOR)
        deadline = time.monotonic() + 20
        while (len(images) < 3 or len(jpegs) < 3 or len(chunks) < 5) and (
            time.monotonic() < deadline
        ):
            rclpy.spin_once(node, timeout_sec=0.05)
        frame = convert.from_ros_image(images[-1]) if images else None
        result = {
            "images": len(images),
            "size": [frame.width, frame.height, frame.encoding] if frame else None,
            "jpeg": convert.from_ros_compressed(jpegs[-1]).width if jpegs else None,
            "chunk_samples": sorted({len(c.data) for c in chunks}),
            "chunk_label": chunks[-1].layout.dim[0].label if chunks else None,
            "alive": [p.poll() is None for p in procs],
            "no_card_rc": no_card.returncode,
            "no_card_msg": (no_card.stdout + no_card.stderr).strip().splitlines()[-1:],
        }
        stop_processes(procs, timeout_s=30.0)  # a loaded machine stops slowly: never -9
        result["exit_codes"] = [p.returncode for p in procs]
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
