"""imgcomp multi-task node: imgcomp_msgs/CompressedFeatures in; depth, segmentation and normals out.

Run: ``ros2 run imgcomp multitask_node --ros-args --params-file config/multitask.yaml``
or ``ros2 launch imgcomp host_decode.launch.py multitask:=true``.

The head reads the entropy-decoded latent of each payload (``Codec.decode_latent``): the image
is never reconstructed. Topics (relative names, remappable):

* subscribes ``camera/image_raw/imgcomp`` (imgcomp_msgs/CompressedFeatures), sensor-data QoS
* publishes, each with the source image's stamp and frame_id, reliable, keep last 5:
  ``camera/depth`` (sensor_msgs/Image ``32FC1``, metres), ``camera/segmentation`` (``mono8``
  class ids: 0 floor, 1 wall, 2 ceiling, 3 box, 4 cylinder, 5 sphere),
  ``camera/segmentation/color`` (``rgb8``), ``camera/normals`` (``32FC3``, unit, camera
  frame: x right, y down, z forward) and ``camera/normals/color`` (``rgb8``, (n + 1) / 2)
* publishes ``/diagnostics`` every ``diagnostics_period_s``

A malformed payload, one from another codec than the head's (``head_mismatch``) or from other
weights (``model_mismatch``) is rejected, counted in the diagnostics and logged once per cause
every 10 s; the next valid frame goes through.

Parameters: see `imgcomp.stream.params.MULTITASK_PARAMS` and docs/ros.md.
"""

from __future__ import annotations


from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

from imgcomp_msgs.msg import CompressedFeatures

from imgcomp_ros import startup  # first of ours: exits in one line where torch or CompressAI cannot run
from imgcomp.stream import FeaturesFields, MultiTaskCore
from imgcomp.stream.params import MULTITASK_PARAMS
from imgcomp_ros.node_base import CodecNodeMixin
from imgcomp_ros.rosutil import OUTPUT_QOS, image_msg, run_node

INPUT_TOPIC = "camera/image_raw/imgcomp"
DEPTH_TOPIC = "camera/depth"
SEGMENTATION_TOPIC = "camera/segmentation"
SEGMENTATION_COLOR_TOPIC = "camera/segmentation/color"
NORMALS_TOPIC = "camera/normals"
NORMALS_COLOR_TOPIC = "camera/normals/color"
LOG_THROTTLE_S = CodecNodeMixin.LOG_THROTTLE_S


class MultiTaskNode(CodecNodeMixin, Node):
    ROLE = "multitask"

    def __init__(self, **kwargs) -> None:
        super().__init__("imgcomp_multitask", **kwargs)
        # The head and the latent's entropy decoding run on torch; no exported backends here.
        params = self._start(MULTITASK_PARAMS, backend="torch")

        from imgcomp.multitask.predictor import Perceiver

        core = MultiTaskCore(
            Perceiver(params["head"], device=self._device.used), max_output_pixels=params["max_output_pixels"]
        )
        options = QoSOverridingOptions.with_default_policies()
        self._pubs = {
            key: self.create_publisher(Image, topic, OUTPUT_QOS, qos_overriding_options=options)
            for key, topic in (
                ("depth", DEPTH_TOPIC),
                ("labels", SEGMENTATION_TOPIC),
                ("labels_color", SEGMENTATION_COLOR_TOPIC),
                ("normals", NORMALS_TOPIC),
                ("normals_color", NORMALS_COLOR_TOPIC),
            )
        }
        self._wire(core, CompressedFeatures, INPUT_TOPIC, self._perceive, params["diagnostics_period_s"], self._catch_up)
        perceiver = self._core.perceiver
        self.get_logger().info(
            f"{perceiver.head_name} on {perceiver.codec_name} features: {self._sub.topic_name} -> "
            + ", ".join(p.topic_name for p in self._pubs.values())
        )

    def _perceive(self, msg: CompressedFeatures) -> None:
        result = self._core.process(FeaturesFields.from_msg(msg))
        if self._rejected(result, "payload"):
            return
        for key, pub in self._pubs.items():
            pub.publish(image_msg(msg.header, getattr(result, key)))


def main(args: list[str] | None = None) -> None:
    run_node(startup.checked(MultiTaskNode, "imgcomp_multitask", MULTITASK_PARAMS), args)


if __name__ == "__main__":
    main()
