"""launch_testing: the encoder and decoder nodes on a real ROS 2 graph.

* a corrupted CompressedFeatures is counted as rejected (cause malformed_payload) in the
  decoder's /diagnostics, and the next good frame still decodes;
* a payload of other weights is rejected with cause model_mismatch;
* an Image of an unsupported encoding is counted by the encoder, the next good one encodes;
* parameter ranges are enforced (quality 9 refused) and a new quality is used at once;
* forged payloads with recomputed CRCs (huge claimed sizes, empty or minimal streams) are
  rejected (malformed_payload, too_large) or decoded, and the next good frame still decodes.

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
import dataclasses  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

import launch  # noqa: E402
import launch_ros.actions  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402
import numpy as np  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from imgcomp_msgs.msg import CompressedFeatures  # noqa: E402

from imgcomp import bitstream  # noqa: E402
from imgcomp.codec import Codec  # noqa: E402

STARTUP_TIMEOUT_S = 120.0
WAIT_S = 15.0
H, W = 96, 128
FEATURES = "/camera/image_raw/imgcomp"


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
                package="imgcomp", executable="decoder_node", name="imgcomp_decoder",
                parameters=[params], output="screen",
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


def _rgb(seed: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([(x * 2 + seed) % 256, (y * 2) % 256, (x + y + seed) % 256], axis=2).astype(np.uint8)


def _image(stamp_sec: int, encoding: str = "rgb8") -> Image:
    msg = Image()
    msg.header.stamp.sec = stamp_sec
    msg.header.frame_id = "nodes_test"
    msg.height, msg.width, msg.encoding, msg.is_bigendian = H, W, encoding, 0
    if encoding == "rgb8":
        msg.step, msg.data = 3 * W, _rgb(stamp_sec).tobytes()
    else:  # e.g. 32FC1: well-formed, but not an encoding the codec takes
        msg.step, msg.data = 4 * W, bytes(4 * W * H)
    return msg


class TestNodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("imgcomp_nodes_test")
        cls.codec = Codec("hyperprior-mse")
        cls.decoded: dict[int, Image] = {}
        cls.features: dict[int, CompressedFeatures] = {}
        cls.diagnostics: dict[str, dict[str, str]] = {}

        def on_diag(msg: DiagnosticArray) -> None:
            for status in msg.status:
                for who in ("imgcomp_encoder", "imgcomp_decoder"):
                    if status.name.startswith(who):
                        cls.diagnostics[who] = {kv.key: kv.value for kv in status.values}

        cls.subs = [
            cls.node.create_subscription(Image, "/camera/image_decoded",
                                         lambda m: cls.decoded.setdefault(m.header.stamp.sec, m), 10),
            cls.node.create_subscription(CompressedFeatures, FEATURES,
                                         lambda m: cls.features.setdefault(m.header.stamp.sec, m), 10),
            cls.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50),
        ]
        cls.image_pub = cls.node.create_publisher(Image, "/camera/image_raw", 10)
        cls.features_pub = cls.node.create_publisher(CompressedFeatures, FEATURES, 10)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    # -------------------------------------------------------------------------- helpers
    def _spin_until(self, condition, timeout_s: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def _features_msg(self, stamp_sec: int, payload: bytes | None = None, **fields) -> CompressedFeatures:
        data = self.codec.encode(_rgb(stamp_sec), quality=2, encoding="rgb8", frame_number=stamp_sec)
        msg = CompressedFeatures()
        msg.header.stamp.sec = stamp_sec
        msg.header.frame_id = "nodes_test"
        msg.codec = self.codec.model_name
        msg.model_hash = self.codec.model_hash
        msg.quality, msg.height, msg.width, msg.encoding = 2, H, W, "rgb8"
        msg.frame_type, msg.frame_number, msg.reference_frame_number = 0, stamp_sec, stamp_sec
        for key, value in fields.items():
            setattr(msg, key, value)
        msg.data = array.array("B", data if payload is None else payload)
        return msg

    def _rejected(self, who: str, cause: str) -> int:
        return int(self.diagnostics.get(who, {}).get(f"rejected.{cause}", "0"))

    def _decode_until_ready(self, first_stamp: int) -> None:
        stamp = first_stamp
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while stamp not in self.decoded and time.monotonic() < deadline:
            self.features_pub.publish(self._features_msg(stamp))
            if not self._spin_until(lambda: stamp in self.decoded, 1.0):
                stamp += 1
        self.assertIn(stamp, self.decoded, "the decoder never answered")

    # ----------------------------------------------------------------------------- tests
    def test_1_corrupted_payload_is_counted_and_the_next_frame_decodes(self) -> None:
        self._decode_until_ready(100)
        good = self.codec.encode(_rgb(200), quality=2, encoding="rgb8", frame_number=200)
        corrupted = bytearray(good)
        corrupted[len(corrupted) // 2] ^= 0xFF
        self.features_pub.publish(self._features_msg(200, payload=bytes(corrupted)))
        self.assertTrue(self._spin_until(lambda: self._rejected("imgcomp_decoder", "malformed_payload") >= 1),
                        f"no malformed_payload rejection in /diagnostics: {self.diagnostics.get('imgcomp_decoder')}")
        self.assertNotIn(200, self.decoded)
        self.features_pub.publish(self._features_msg(201))
        self.assertTrue(self._spin_until(lambda: 201 in self.decoded), "the next good frame did not decode")
        out = self.decoded[201]
        self.assertEqual((out.height, out.width, out.encoding, out.header.frame_id), (H, W, "rgb8", "nodes_test"))

    def test_2_other_weights_are_rejected_as_model_mismatch(self) -> None:
        self._decode_until_ready(300)
        frame = bitstream.unpack(self.codec.encode(_rgb(400), quality=2, encoding="rgb8", frame_number=400))
        other = dataclasses.replace(frame.header, model_hash="0123456789abcdef")
        payload = bitstream.pack(bitstream.Frame(other, frame.streams))
        self.features_pub.publish(self._features_msg(400, payload=payload, model_hash="0123456789abcdef"))
        self.assertTrue(self._spin_until(lambda: self._rejected("imgcomp_decoder", "model_mismatch") >= 1))
        self.features_pub.publish(self._features_msg(401))
        self.assertTrue(self._spin_until(lambda: 401 in self.decoded))

    def test_3_encoder_counts_bad_images_and_keeps_encoding(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        stamp = 500
        while stamp not in self.features and time.monotonic() < deadline:
            self.image_pub.publish(_image(stamp))
            if not self._spin_until(lambda: stamp in self.features, 1.0):
                stamp += 1
        self.assertIn(stamp, self.features, "the encoder never answered")
        self.image_pub.publish(_image(600, encoding="32FC1"))
        self.assertTrue(self._spin_until(lambda: self._rejected("imgcomp_encoder", "unsupported_encoding") >= 1))
        self.image_pub.publish(_image(601))
        self.assertTrue(self._spin_until(lambda: 601 in self.features))
        f = self.features[601]
        self.assertEqual((f.height, f.width, f.encoding, f.codec), (H, W, "rgb8", "hyperprior-mse"))

    def test_4_quality_parameter_range_and_runtime_change(self) -> None:
        client = self.node.create_client(SetParameters, "/imgcomp_encoder/set_parameters")
        self.assertTrue(client.wait_for_service(timeout_sec=STARTUP_TIMEOUT_S))

        def set_quality(value: int) -> bool:
            param = Parameter(name="quality", value=ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                                                                   integer_value=value))
            future = client.call_async(SetParameters.Request(parameters=[param]))
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=WAIT_S)
            return future.result().results[0].successful

        self.assertFalse(set_quality(9))  # outside the declared range 1..levels
        self.assertTrue(set_quality(5))
        self.image_pub.publish(_image(700))
        self.assertTrue(self._spin_until(lambda: 700 in self.features))
        self.assertEqual(self.features[700].quality, 5)

    def test_5_forged_payloads_with_valid_crcs_cost_one_frame_each(self) -> None:
        """The forgeries that segfaulted the decoder before (a recomputed CRC, a huge claimed
        size, empty or minimal streams): each is rejected or decoded, the node keeps serving."""
        self._decode_until_ready(800)
        frame = bitstream.unpack(self.codec.encode(_rgb(900), quality=2, encoding="rgb8", frame_number=900))

        def forged(side: int, streams: tuple[bytes, ...]) -> bytes:
            header = dataclasses.replace(frame.header, height=side, width=side,
                                         latent_shape=self.codec.expected_latent_shape(side, side))
            return bitstream.pack_fields(bitstream.Frame(header, streams))

        before = self._rejected("imgcomp_decoder", "malformed_payload")
        self.features_pub.publish(self._features_msg(900, payload=forged(2048, (b"", b"")), height=2048, width=2048))
        self.assertTrue(self._spin_until(lambda: self._rejected("imgcomp_decoder", "malformed_payload") > before))
        self.features_pub.publish(self._features_msg(901, payload=forged(4096, frame.streams), height=4096, width=4096))
        self.assertTrue(self._spin_until(lambda: self._rejected("imgcomp_decoder", "too_large") >= 1),
                        f"no too_large rejection: {self.diagnostics.get('imgcomp_decoder')}")
        self.features_pub.publish(self._features_msg(902, payload=forged(256, (b"\xff" * 8, b"\xff" * 8)),
                                                     height=256, width=256))
        self.assertTrue(self._spin_until(lambda: 902 in self.decoded), "a forged string of valid length did not decode")
        self.assertEqual((self.decoded[902].height, self.decoded[902].width), (256, 256))
        self.features_pub.publish(self._features_msg(903))
        self.assertTrue(self._spin_until(lambda: 903 in self.decoded), "the next good frame did not decode")


@launch_testing.post_shutdown_test()
class TestNodesShutdown(unittest.TestCase):
    def test_nodes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
