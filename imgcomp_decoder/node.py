"""imgcomp decoder node: imgcomp_msgs/CompressedFeatures in, sensor_msgs/Image out.

Run: ``ros2 run imgcomp decoder_node --ros-args --params-file config/decoder.yaml``
or ``ros2 launch imgcomp host_decode.launch.py``.

Topics (relative names: they resolve inside the node's namespace and can be remapped)

* subscribes ``camera/image_raw/imgcomp`` (imgcomp_msgs/CompressedFeatures), sensor-data QoS
  (best effort, keep last 5: it matches a reliable or a best-effort publisher, and a late
  frame is not worth waiting for)
* publishes ``camera/image_decoded`` (sensor_msgs/Image), reliable, keep last 5
* publishes ``/diagnostics`` (diagnostic_msgs/DiagnosticArray) every ``diagnostics_period_s``

Without a namespace these are ``/camera/image_raw/imgcomp`` and ``/camera/image_decoded``.
The decoded image has the source's size, encoding, stamp and frame_id. QoS of both topics can
be changed through ``qos_overrides.*`` parameters.

Each payload names its model and weights hash. A payload of another shipped model is decoded
with that model (loaded once, then cached); an unknown model, a weights-hash mismatch or a
malformed payload is rejected, counted in the diagnostics (``rejected.<cause>``) and logged
once per cause every 10 s; the next valid frame decodes as usual.

Temporal mode: each stream (model, weights, stream id) keeps its own reference, so P-frames of two
encoders on one topic, or of a restarted encoder, are never mixed. A P-frame whose reference was
lost is rejected (``missing_reference``), as is every later P-frame of its stream up to the next
key frame: the topic then shows no new image for that long, never a wrong one. Messages the
worker skips to stay at the newest still get their latents decoded, so skipping costs no frames.

Parameters: see `imgcomp.stream.params.DECODER_PARAMS` and docs/ros.md.
"""

from __future__ import annotations

import threading

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

from imgcomp_msgs.msg import CompressedFeatures

from imgcomp_ros import startup  # first of ours: exits in one line where torch or CompressAI cannot run
from imgcomp.stream import DecoderCore, FeaturesFields, codec_factory
from imgcomp.stream.params import DECODER_PARAMS, check
from imgcomp_ros.node_base import CodecNodeMixin
from imgcomp_ros.rosutil import OUTPUT_QOS, add_parameter_callbacks, image_msg, run_node

INPUT_TOPIC = "camera/image_raw/imgcomp"
OUTPUT_TOPIC = "camera/image_decoded"
LOG_THROTTLE_S = CodecNodeMixin.LOG_THROTTLE_S


class DecoderNode(CodecNodeMixin, Node):
    ROLE = "decoder"

    def __init__(self, **kwargs) -> None:
        super().__init__("imgcomp_decoder", **kwargs)
        params = self._start(DECODER_PARAMS)
        log = self.get_logger()
        device = self._device.used

        core = DecoderCore(
            codec_factory(self._backend.used, device, self.get_logger().warning, params["graphs_dir"], params["threads"]),
            model=params["model"],
            max_cached_models=params["max_cached_models"],
            max_output_pixels=params["max_output_pixels"],
        )

        self._pub = self.create_publisher(
            Image, OUTPUT_TOPIC, OUTPUT_QOS,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self._wire(core, CompressedFeatures, INPUT_TOPIC, self._decode, params["diagnostics_period_s"], self._catch_up)
        add_parameter_callbacks(self, self._validate, self._apply)
        log.info(
            f"decoding {self._sub.topic_name} -> {self._pub.topic_name}; "
            f"loaded {', '.join(self._core.loaded_models)} on {device}"
        )

    # ------------------------------------------------------------------------ parameters
    def _validate(self, params: list[Parameter]) -> str | None:
        specs = {spec.name: spec for spec in DECODER_PARAMS}
        for p in params:
            spec = specs.get(p.name)
            if spec is not None:
                error = check(spec, p.value)
                if error:
                    return error
        return None

    def _apply(self, params: list[Parameter]) -> None:
        for p in params:
            if p.name == "model":
                threading.Thread(
                    target=self._preload, args=(p.value,), name="imgcomp-model-load", daemon=True
                ).start()

    def _preload(self, model: str) -> None:
        try:
            self._core.preload(model)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"cannot load model {model!r}: {exc}")
            return
        self.get_logger().info(f"model {model} loaded; cached: {', '.join(self._core.loaded_models)}")

    # ---------------------------------------------------------------------------- frames
    def _decode(self, msg: CompressedFeatures) -> None:
        result = self._core.process(FeaturesFields.from_msg(msg))
        if self._rejected(result, "payload"):
            return
        self._pub.publish(image_msg(msg.header, result))


def main(args: list[str] | None = None) -> None:
    run_node(startup.checked(DecoderNode, "imgcomp_decoder", DECODER_PARAMS), args)


if __name__ == "__main__":
    main()
