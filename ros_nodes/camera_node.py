"""camera_node: OpenCV capture (device index, file or stream URL) -> sensor_msgs/Image.

Publishes /camera/image_raw (sensor-data QoS) and, with `publish_compressed`, a JPEG
/camera/image_raw/compressed. Frames are grabbed on a timer at `rate_hz`, resized to
`width` x `height` (0 keeps the source size) and converted once to the output encoding.
"""

from __future__ import annotations

from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from omni_agent.messages import ImageFrame
from ros_nodes import convert, qos
from ros_nodes.runtime import NodeExit, main_for, publish


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera_node")
        try:
            import cv2
        except ImportError as exc:
            raise NodeExit(
                f"camera_node needs OpenCV: pip install opencv-python-headless ({exc})"
            ) from None
        self.cv2 = cv2
        p = self.declare_parameter
        self.source = str(p("source", "0").value)
        self.width = int(p("width", 640).value)
        self.height = int(p("height", 480).value)
        self.encoding = str(p("encoding", "rgb8").value)
        self.frame_id = str(p("frame_id", "camera").value)
        self.loop_file = bool(p("loop", True).value)
        self.compressed = bool(p("publish_compressed", False).value)
        self.quality = int(p("jpeg_quality", 80).value)
        rate = float(p("rate_hz", 30.0).value)
        if self.encoding not in convert.CHANNELS:
            raise NodeExit(f"camera_node: encoding {self.encoding!r} must be rgb8, bgr8 or mono8")
        self.cap: Any = None
        self._open()
        self.pub = self.create_publisher(Image, qos.CAMERA, qos.SENSOR)
        self.cpub = (
            self.create_publisher(CompressedImage, qos.CAMERA_COMPRESSED, qos.SENSOR)
            if self.compressed
            else None
        )
        self.create_timer(1.0 / rate, self._grab)

    def _open(self) -> None:
        src: int | str = int(self.source) if self.source.isdigit() else self.source
        self.cap = self.cv2.VideoCapture(src)
        if not self.cap.isOpened():
            raise NodeExit(f"camera_node: cannot open video source {self.source!r}")
        if isinstance(src, int) and self.width and self.height:
            self.cap.set(self.cv2.CAP_PROP_FRAME_WIDTH, self.width)
            self.cap.set(self.cv2.CAP_PROP_FRAME_HEIGHT, self.height)

    def _grab(self) -> None:
        cv2 = self.cv2
        ok, bgr = self.cap.read()
        if not ok and self.loop_file and not self.source.isdigit():
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # end of a file: start again
            ok, bgr = self.cap.read()
        if not ok:
            self.get_logger().warning(f"no frame from {self.source!r}", throttle_duration_sec=5.0)
            return
        h, w = bgr.shape[:2]
        if self.width and self.height and (w, h) != (self.width, self.height):
            bgr = cv2.resize(bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)
        if self.encoding == "rgb8":
            pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        elif self.encoding == "mono8":
            pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        else:
            pixels = bgr
        h, w = pixels.shape[:2]
        data = pixels.tobytes()
        msg = convert.image_from_buffer(data, w, h, self.encoding, frame_id=self.frame_id)
        publish(self, self.pub, msg)
        if self.cpub is not None:
            frame = ImageFrame(width=w, height=h, encoding=self.encoding, data=data)
            cmsg = convert.to_ros_compressed(frame, self.quality, self.frame_id)
            cmsg.header.stamp = msg.header.stamp
            publish(self, self.cpub, cmsg)

    def destroy_node(self) -> None:
        if self.cap is not None:
            self.cap.release()
        super().destroy_node()


def main() -> int:
    return main_for(CameraNode)


if __name__ == "__main__":
    raise SystemExit(main())
