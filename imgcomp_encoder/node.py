"""imgcomp encoder node: sensor_msgs/Image in, imgcomp_msgs/CompressedFeatures out.

Run: ``ros2 run imgcomp encoder_node --ros-args --params-file config/encoder.yaml``
or ``ros2 launch imgcomp jetson_encode.launch.py``.

Topics (relative names: they resolve inside the node's namespace and can be remapped)

* subscribes ``camera/image_raw`` (sensor_msgs/Image), sensor-data QoS: best effort, keep last 5
* publishes ``camera/image_raw/imgcomp`` (imgcomp_msgs/CompressedFeatures), reliable, keep last 5
* publishes ``/diagnostics`` (diagnostic_msgs/DiagnosticArray) every ``diagnostics_period_s``

Without a namespace these are ``/camera/image_raw`` (what camera drivers publish) and
``/camera/image_raw/imgcomp`` (a sibling of image_transport's ``/camera/image_raw/compressed``).
Point the node at another camera with ``-r camera/image_raw:=/my_cam/image_raw -r
camera/image_raw/imgcomp:=/my_cam/image_raw/imgcomp`` (the launch files' ``camera_topic``
argument does both). QoS of both topics can be changed through ``qos_overrides.*`` parameters.

Temporal mode (``keyframe_interval`` > 0, a model with temporal tables): a key frame every
``keyframe_interval`` frames and latent P-frames in between; every start of the node, and every
model switch, begins a new stream (new stream id) with a key frame.

Parameters: see `imgcomp.stream.params.ENCODER_PARAMS` and docs/ros.md.

Threads: the subscription callback only drops the message into a single-slot mailbox; a worker
thread encodes the newest frame and publishes it. When encoding is slower than the camera,
older frames are dropped (counted in the diagnostics) instead of queueing up latency.
"""

from __future__ import annotations

import array
import threading

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

from imgcomp_msgs.msg import CompressedFeatures

from imgcomp_ros import startup  # first of ours: exits in one line where torch or CompressAI cannot run
from imgcomp.models.registry import model_entry
from imgcomp.stream import EncoderCore, FeaturesFields, ImageFields, codec_factory
from imgcomp.stream.params import ENCODER_PARAMS, check
from imgcomp_ros.node_base import CodecNodeMixin
from imgcomp_ros.rosutil import OUTPUT_QOS, add_parameter_callbacks, run_node

INPUT_TOPIC = "camera/image_raw"
OUTPUT_TOPIC = "camera/image_raw/imgcomp"
LOG_THROTTLE_S = CodecNodeMixin.LOG_THROTTLE_S


class EncoderNode(CodecNodeMixin, Node):
    ROLE = "encoder"

    def __init__(self, **kwargs) -> None:
        super().__init__("imgcomp_encoder", **kwargs)
        params = self._start(ENCODER_PARAMS)
        log = self.get_logger()
        device = self._device.used

        levels = model_entry(params["model"])["levels"]
        quality = params["quality"]
        if quality > levels:
            log.warning(f"quality {quality} is above the {levels} levels of {params['model']}: using {levels}")
            quality = levels
        core = EncoderCore(
            codec_factory(self._backend.used, device, self.get_logger().warning, params["graphs_dir"], params["threads"]),
            model=params["model"],
            quality=quality,
            max_pixels=params["max_input_pixels"],
            target_kbps=params["target_bitrate_kbps"],
            fps_hint=params["fps_hint"],
            keyframe_interval=params["keyframe_interval"],
        )
        self._model_thread: threading.Thread | None = None

        self._pub = self.create_publisher(
            CompressedFeatures, OUTPUT_TOPIC, OUTPUT_QOS,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self._wire(core, Image, INPUT_TOPIC, self._encode, params["diagnostics_period_s"])
        add_parameter_callbacks(self, self._validate, self._apply)
        log.info(
            f"encoding {self._sub.topic_name} -> {self._pub.topic_name} with {self._core.model_name} "
            f"(weights {self._core.codec.model_hash}), quality {self._core.quality}, "
            f"target {self._core.target_kbps:g} kbit/s, on {device}; temporal mode "
            f"{self._core.diagnostics()['temporal']}, stream {self._core.stream_id:08x}"
        )

    # ------------------------------------------------------------------------ parameters
    def _validate(self, params: list[Parameter]) -> str | None:
        specs = {spec.name: spec for spec in ENCODER_PARAMS}
        new = {p.name: p.value for p in params}
        for name, value in new.items():
            spec = specs.get(name)
            if spec is None:  # use_sim_time, qos_overrides.*: not ours
                continue
            error = check(spec, value)
            if error:
                return error
        if "quality" in new:
            model = new.get("model", self._core.model_name)
            levels = model_entry(model)["levels"]
            if new["quality"] > levels:
                return f"quality must be <= {levels} for model {model!r}, got {new['quality']}"
        return None

    def _apply(self, params: list[Parameter]) -> None:
        for p in params:
            if p.name == "quality":
                self._core.set_quality(p.value)
            elif p.name == "target_bitrate_kbps":
                self._core.set_target_kbps(p.value)
            elif p.name == "max_input_pixels":
                self._core.set_max_pixels(p.value)
            elif p.name == "keyframe_interval":
                self._core.set_keyframe_interval(p.value)
            elif p.name == "model" and p.value != self._core.model_name:
                self._model_thread = threading.Thread(
                    target=self._switch_model, args=(p.value,), name="imgcomp-model-load", daemon=True
                )
                self._model_thread.start()

    def _switch_model(self, model: str) -> None:
        try:
            self._core.set_model(model)  # seconds; frames keep flowing with the old model
        except Exception as exc:  # noqa: BLE001 - keep encoding with the old model
            self.get_logger().error(f"cannot switch to model {model!r}: {exc}; still using {self._core.model_name}")
            return
        self.get_logger().info(
            f"switched to model {model} (weights {self._core.codec.model_hash}), quality {self._core.quality}; "
            f"new stream {self._core.stream_id:08x} (key frame first), temporal mode {self._core.diagnostics()['temporal']}"
        )

    # ---------------------------------------------------------------------------- frames
    def _encode(self, msg: Image) -> None:
        result = self._core.process(ImageFields.from_msg(msg))
        if self._rejected(result, "image"):
            return
        self._pub.publish(self._features_msg(msg, result))

    @staticmethod
    def _features_msg(image: Image, f: FeaturesFields) -> CompressedFeatures:
        out = CompressedFeatures()
        out.header = image.header  # stamp and frame_id of the source, unchanged
        out.codec = f.codec
        out.model_hash = f.model_hash
        out.quality = f.quality
        out.height = f.height
        out.width = f.width
        out.encoding = f.encoding
        out.frame_type = f.frame_type
        out.frame_number = f.frame_number
        out.reference_frame_number = f.reference_frame_number
        out.data = array.array("B", f.data)  # from bytes: one memcpy, no per-element checks
        return out


def main(args: list[str] | None = None) -> None:
    run_node(startup.checked(EncoderNode, "imgcomp_encoder", ENCODER_PARAMS), args)


if __name__ == "__main__":
    main()
