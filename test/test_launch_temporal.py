"""launch_testing: the temporal mode on a real ROS 2 graph, with a message dropped on purpose.

The encoder node sends groups (keyframe_interval 5: a key frame, four P-frames). The test node
relays its CompressedFeatures to the decoder node's input, except one P-frame. Expected: every
frame before the drop and from the next key frame on comes out, pixel for pixel what a
StreamDecoder makes of the whole stream; the P-frames between the drop and that key frame never
come out (no wrong image), and the decoder's /diagnostics counts them as
`rejected.missing_reference`.

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

import time  # noqa: E402
import unittest  # noqa: E402

import launch  # noqa: E402
import launch_ros.actions  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402
import numpy as np  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from imgcomp_msgs.msg import CompressedFeatures  # noqa: E402

from imgcomp.codec import Codec  # noqa: E402
from imgcomp.temporal.stream import StreamDecoder  # noqa: E402

STARTUP_TIMEOUT_S = 120.0
WAIT_S = 15.0
ABSENT_S = 3.0  # how long a frame that must not come out is waited for
H, W = 96, 128
INTERVAL = 5
RELAY = "/relay/imgcomp"


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    params = {"device": "cpu", "diagnostics_period_s": 0.2, "torch_threads": 1}
    return launch.LaunchDescription(
        [
            launch_ros.actions.Node(
                package="imgcomp", executable="encoder_node", name="imgcomp_encoder",
                sigterm_timeout="15",  # as the launch files: unloading torch takes seconds on a busy CPU
                parameters=[dict(params, quality=3, keyframe_interval=INTERVAL)], output="screen",
            ),
            launch_ros.actions.Node(
                package="imgcomp", executable="decoder_node", name="imgcomp_decoder", sigterm_timeout="15",
                parameters=[params], output="screen", remappings=[("camera/image_raw/imgcomp", RELAY)],
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


def _image(k: int) -> Image:
    """A slow pan over a fixed pattern: consecutive frames are alike, as in a camera stream."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([(x * 3 + 2 * k) % 256, (y * 2 + k) % 256, ((x + y) * 2) % 256], axis=2).astype(np.uint8)
    msg = Image()
    msg.header.stamp.sec = 1000 + k
    msg.header.frame_id = "temporal_test"
    msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = H, W, "rgb8", 0, 3 * W
    msg.data = rgb.tobytes()
    return msg


class TestTemporal(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("imgcomp_temporal_test")
        cls.features: dict[int, CompressedFeatures] = {}
        cls.decoded: dict[int, Image] = {}
        cls.diagnostics: dict[str, str] = {}

        def on_diag(msg: DiagnosticArray) -> None:
            for status in msg.status:
                if status.name.startswith("imgcomp_decoder"):
                    cls.diagnostics = {kv.key: kv.value for kv in status.values}

        cls.subs = [
            cls.node.create_subscription(CompressedFeatures, "/camera/image_raw/imgcomp",
                                         lambda m: cls.features.setdefault(m.header.stamp.sec, m), 50),
            cls.node.create_subscription(Image, "/camera/image_decoded",
                                         lambda m: cls.decoded.setdefault(m.header.stamp.sec, m), 50),
            cls.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50),
        ]
        cls.image_pub = cls.node.create_publisher(Image, "/camera/image_raw", 10)
        cls.relay_pub = cls.node.create_publisher(CompressedFeatures, RELAY, 10)

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

    def _encode(self, k: int) -> CompressedFeatures:
        stamp = 1000 + k
        self.image_pub.publish(_image(k))
        self.assertTrue(self._spin_until(lambda: stamp in self.features), f"frame {k} was not encoded")
        return self.features[stamp]

    def test_a_dropped_pframe_costs_the_frames_up_to_the_next_keyframe(self) -> None:
        # warm-up: the encoder loads its model; then wait for a key frame to start from
        k, deadline = 0, time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            self.image_pub.publish(_image(k))
            if self._spin_until(lambda: 1000 + k in self.features, 1.0) and self.features[1000 + k].frame_type == 0:
                break
            k += 1
        start = k
        self.assertEqual(self.features[1000 + start].frame_type, 0, "no key frame from the encoder")
        sent = [self.features[1000 + start]] + [self._encode(start + i) for i in range(1, 2 * INTERVAL + 1)]
        self.assertEqual([f.frame_type for f in sent], ([0] + [1] * (INTERVAL - 1)) * 2 + [0])
        reference = StreamDecoder(Codec("hyperprior-mse"))
        expected = [reference.decode(bytes(f.data)) for f in sent]
        dropped = 2  # the second P-frame of the first group
        before = int(self.diagnostics.get("rejected.missing_reference", "0"))
        for i, f in enumerate(sent):
            stamp = 1000 + start + i
            if i == dropped:
                continue
            self.relay_pub.publish(f)
            if dropped < i < INTERVAL:
                self.assertFalse(self._spin_until(lambda: stamp in self.decoded, ABSENT_S),
                                 f"frame {i} came out although its reference was dropped")
                continue
            # the decoder model loads on the first message: the first frame may take a while
            self.assertTrue(self._spin_until(lambda: stamp in self.decoded, STARTUP_TIMEOUT_S if i == 0 else WAIT_S),
                            f"frame {i} did not come out")
            out = self.decoded[stamp]
            image = np.frombuffer(bytes(out.data), dtype=np.uint8).reshape(H, W, 3)
            self.assertTrue(np.array_equal(image, expected[i]), f"frame {i} is not the stream's image")
        lost = INTERVAL - 1 - dropped
        self.assertTrue(
            self._spin_until(lambda: int(self.diagnostics.get("rejected.missing_reference", "0")) - before >= lost),
            f"missing_reference not counted: {self.diagnostics}",
        )
        self.assertEqual(int(self.diagnostics["rejected.missing_reference"]) - before, lost)
        print(f"temporal loopback: dropped P-frame {dropped} of a group of {INTERVAL}; frames {dropped + 1}.."
              f"{INTERVAL - 1} refused as missing_reference ({lost}), the key frame and its group decoded; "
              f"decoder diagnostics: streams {self.diagnostics.get('streams')}, "
              f"P-frames decoded {self.diagnostics.get('pframes_decoded')}")


@launch_testing.post_shutdown_test()
class TestTemporalShutdown(unittest.TestCase):
    def test_nodes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
