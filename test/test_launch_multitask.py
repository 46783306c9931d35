"""launch_testing: the multi-task node on a real ROS 2 graph, fed by the real encoder node.

* a rendered indoor frame published on /camera/image_raw comes out as depth (32FC1),
  segmentation (mono8 + rgb8) and normals (32FC3 + rgb8) with the source's stamp and frame_id,
  equal to what the library's Perceiver makes of the same payload;
* a payload of another codec is rejected (cause head_mismatch, counted in /diagnostics) and the
  next good frame still comes out.

Needs ROS 2 sourced and this package and imgcomp_msgs built (see test_launch_loopback.py).
"""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip(
    "rclpy", reason="rclpy is not installed: ROS 2 launch tests run where ROS 2 is sourced"
)
launch_testing = pytest.importorskip(
    "launch_testing", reason="launch_testing is not installed: ROS 2 launch tests run where ROS 2 is sourced"
)

import array  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

import launch  # noqa: E402
import launch_ros.actions  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.markers  # noqa: E402
import numpy as np  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from imgcomp_msgs.msg import CompressedFeatures  # noqa: E402

from imgcomp.codec import Codec  # noqa: E402
from imgcomp.multitask.predictor import Perceiver  # noqa: E402
from imgcomp.multitask.scenes import TEST_FIRST_SEED, render_scene  # noqa: E402

STARTUP_TIMEOUT_S = 120.0
WAIT_S = 20.0
H, W = 192, 256
OUTPUTS = {
    "/camera/depth": "32FC1",
    "/camera/segmentation": "mono8",
    "/camera/segmentation/color": "rgb8",
    "/camera/normals": "32FC3",
    "/camera/normals/color": "rgb8",
}


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    params = {"device": "cpu", "diagnostics_period_s": 0.2, "threads": 1}
    return launch.LaunchDescription(
        [
            launch_ros.actions.Node(
                package="imgcomp", executable="encoder_node", name="imgcomp_encoder",
                parameters=[dict(params, quality=3)], output="screen",
            ),
            launch_ros.actions.Node(
                package="imgcomp", executable="multitask_node", name="imgcomp_multitask",
                parameters=[params], output="screen",
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestMultiTaskNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("imgcomp_multitask_test")
        cls.frame = render_scene(TEST_FIRST_SEED, H, W)
        cls.received: dict[str, dict[int, Image]] = {topic: {} for topic in OUTPUTS}
        cls.diagnostics: dict[str, str] = {}

        def on_diag(msg: DiagnosticArray) -> None:
            for status in msg.status:
                if status.name.startswith("imgcomp_multitask"):
                    cls.diagnostics.update({kv.key: kv.value for kv in status.values})

        def keep(topic: str):
            return lambda m: cls.received[topic].setdefault(m.header.stamp.sec, m)

        cls.features: dict[int, CompressedFeatures] = {}
        cls.subs = [cls.node.create_subscription(Image, t, keep(t), 10) for t in OUTPUTS]
        cls.subs.append(cls.node.create_subscription(
            CompressedFeatures, "/camera/image_raw/imgcomp", lambda m: cls.features.setdefault(m.header.stamp.sec, m), 10))
        cls.subs.append(cls.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50))
        cls.image_pub = cls.node.create_publisher(Image, "/camera/image_raw", 10)
        cls.features_pub = cls.node.create_publisher(CompressedFeatures, "/camera/image_raw/imgcomp", 10)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def _spin_until(self, condition, timeout_s: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def _image(self, stamp_sec: int) -> Image:
        msg = Image()
        msg.header.stamp.sec = stamp_sec
        msg.header.frame_id = "multitask_test"
        msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = H, W, "rgb8", 0, 3 * W
        msg.data = array.array("B", self.frame.rgb.tobytes())
        return msg

    def _all_outputs(self, stamp: int) -> bool:
        return all(stamp in got for got in self.received.values())

    def _publish_until_answered(self, stamp: int) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            self.image_pub.publish(self._image(stamp))
            if self._spin_until(lambda: self._all_outputs(stamp), 2.0):
                return True
        return False

    def test_1_perception_from_the_features(self) -> None:
        self.assertTrue(self._publish_until_answered(1), "the multi-task node never answered")
        for topic, encoding in OUTPUTS.items():
            msg = self.received[topic][1]
            self.assertEqual((msg.encoding, msg.height, msg.width, msg.header.frame_id),
                             (encoding, H, W, "multitask_test"), topic)
        depth = np.frombuffer(bytes(self.received["/camera/depth"][1].data), dtype="<f4").reshape(H, W)
        self.assertTrue(np.isfinite(depth).all() and (depth > 0).all())
        labels = np.frombuffer(bytes(self.received["/camera/segmentation"][1].data), dtype=np.uint8).reshape(H, W)
        normals = np.frombuffer(bytes(self.received["/camera/normals"][1].data), dtype="<f4").reshape(H, W, 3)
        expected = Perceiver("multitask-latent").perceive(bytes(self.features[1].data))
        np.testing.assert_array_equal(labels, expected.labels)
        np.testing.assert_allclose(depth, expected.depth, rtol=1e-5)
        np.testing.assert_allclose(normals, expected.normals, atol=1e-5)
        self.assertGreater(float((labels == self.frame.labels).mean()), 0.3)  # far better than chance

    def test_2_other_codec_is_rejected_and_the_next_frame_goes_through(self) -> None:
        other = Codec("factorized-mse")
        msg = CompressedFeatures()
        msg.header.stamp.sec = 2
        msg.header.frame_id = "multitask_test"
        msg.codec, msg.model_hash = other.model_name, other.model_hash
        msg.quality, msg.height, msg.width, msg.encoding = 3, H, W, "rgb8"
        msg.frame_type, msg.frame_number, msg.reference_frame_number = 0, 2, 2
        msg.data = array.array("B", other.encode(self.frame.rgb, quality=3, encoding="rgb8", frame_number=2))
        self.features_pub.publish(msg)
        self.assertTrue(self._spin_until(lambda: self.diagnostics.get("rejected.head_mismatch") == "1"),
                        f"no head_mismatch in /diagnostics: {self.diagnostics}")
        self.assertTrue(self._publish_until_answered(3))
