"""launch_testing: launch/loopback.launch.py on a real ROS 2 graph.

An Image published on /camera/image_raw must come back on /camera/image_decoded with the
same header, size and encoding, within a latency bound. Needs ROS 2 (rclpy, launch_testing,
launch_ros, sensor_msgs, diagnostic_msgs) sourced and this package and imgcomp_msgs built:

    colcon build --base-paths <repo> <repo>/imgcomp_msgs && . install/setup.bash
    colcon test --packages-select imgcomp   # or: launch_test test/test_launch_loopback.py
"""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip(
    "rclpy", reason="rclpy is not installed: ROS 2 launch tests run where ROS 2 is sourced"
)
launch_testing = pytest.importorskip(
    "launch_testing", reason="launch_testing is not installed: ROS 2 launch tests run where ROS 2 is sourced"
)

import time  # noqa: E402
import unittest  # noqa: E402
from pathlib import Path  # noqa: E402

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402
import numpy as np  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parent.parent / "launch" / "loopback.launch.py"
STARTUP_TIMEOUT_S = 120.0  # both nodes load torch and a model
LATENCY_BOUND_S = 3.0  # publish -> decoded image, 320x240 on a CPU (encode + decode + transport)
FRAMES = 10
WIDTH, HEIGHT = 320, 240
FRAME_ID = "loopback_test_frame"


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    return launch.LaunchDescription(
        [
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
                launch_arguments={"device": "cpu", "quality": "3"}.items(),
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


def _image(index: int) -> Image:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([(x + 7 * index) % 256, (y + 3 * index) % 256, ((x + y) // 2) % 256], axis=2).astype(np.uint8)
    msg = Image()
    msg.header.stamp.sec = 1000 + index
    msg.header.stamp.nanosec = 123_000 + index
    msg.header.frame_id = FRAME_ID
    msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = HEIGHT, WIDTH, "rgb8", 0, 3 * WIDTH
    msg.data = rgb.tobytes()
    return msg


class TestLoopback(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("imgcomp_loopback_test")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def _spin_until(self, condition, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def test_image_comes_back_with_its_header_within_the_latency_bound(self) -> None:
        received: dict[tuple[int, int], tuple[Image, float]] = {}

        def on_image(msg: Image) -> None:
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            received.setdefault(key, (msg, time.monotonic()))

        sub = self.node.create_subscription(Image, "/camera/image_decoded", on_image, 10)
        pub = self.node.create_publisher(Image, "/camera/image_raw", 10)
        try:
            # Warm-up: the nodes load their models; publish until something comes back.
            index = 0
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not received and time.monotonic() < deadline:
                pub.publish(_image(index))
                index += 1
                self._spin_until(lambda: bool(received), 0.5)
            self.assertTrue(received, "no decoded image within the start-up timeout")

            # Measured: one frame at a time, so the latest-frame mailboxes never drop one.
            latencies = []
            for k in range(FRAMES):
                msg = _image(1000 + k)
                key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
                sent = time.monotonic()
                pub.publish(msg)
                self.assertTrue(self._spin_until(lambda: key in received, 10 * LATENCY_BOUND_S), f"frame {k} lost")
                out, arrived = received[key]
                latencies.append(arrived - sent)
                self.assertEqual(out.header.frame_id, FRAME_ID)
                self.assertEqual((out.height, out.width, out.encoding, out.step), (HEIGHT, WIDTH, "rgb8", 3 * WIDTH))
                self.assertEqual(len(out.data), HEIGHT * WIDTH * 3)
            latencies.sort()
            median = latencies[len(latencies) // 2]
            print(f"loopback latency over {FRAMES} frames: median {median * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
            self.assertLess(median, LATENCY_BOUND_S)
        finally:
            self.node.destroy_subscription(sub)
            self.node.destroy_publisher(pub)


@launch_testing.post_shutdown_test()
class TestLoopbackShutdown(unittest.TestCase):
    def test_nodes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
