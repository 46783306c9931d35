"""The base of the three imgcomp nodes (encoder, decoder, multi-task): shared by both node
packages, which never import each other. rclpy is needed only here and in `rosutil`."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions

from imgcomp.stream import Choice, LatestFrameWorker, Rejection, RejectionLog
from imgcomp.stream.params import ParamSpec
from imgcomp_ros.rosutil import DIAGNOSTICS_TOPIC, check_values, declare, diagnostics_msg, setup_compute

__all__ = ["CodecNodeMixin"]


class CodecNodeMixin:
    """What the imgcomp nodes share: start-up (`_start`: parameters, backend, device), the
    wiring around the core (`_wire`: rejection log, diagnostics, latest-frame worker, input
    subscription), the input callback, rejection logging, worker errors, diagnostics, shutdown.

    A node sets `ROLE` ("encoder"/"decoder"/"multitask"), calls `_start` first, builds its core
    and its output publishers, then calls `_wire`; the attributes below are set by those two.
    """

    ROLE = "codec"
    LOG_THROTTLE_S = 10.0
    KEEP_SKIPPED = 30  # skipped messages whose references a receiving node still keeps (1 s at 30 fps)

    _backend: Choice  # set by _start
    _device: Choice
    _core: Any  # EncoderCore, DecoderCore or MultiTaskCore; set by _wire, like the rest
    _rejections: RejectionLog
    _diag_pub: Any
    _worker: LatestFrameWorker
    _sub: Any
    _diag_timer: Any

    def _start(self, specs: Iterable[ParamSpec], **compute: object) -> dict[str, object]:
        """Declare and check the parameters, resolve backend and device (`compute` overrides
        parameter values for that, e.g. ``backend="torch"``); returns the parameter values."""
        specs = list(specs)
        params = declare(self, specs)
        check_values(self, specs)
        self._backend, self._device = setup_compute(self, {**params, **compute})
        return params

    def _wire(self, core: Any, input_type: type, input_topic: str, handle: Callable[[Any], None],
              diagnostics_period_s: float, on_skipped: Callable[[list[Any]], None] | None = None) -> None:
        """Rejection log, diagnostics publisher, the latest-frame worker running `handle`, the
        input subscription (sensor-data QoS, overridable) and the diagnostics timer.
        `on_skipped` gets the messages the worker skipped to stay at the newest (the receiving
        nodes keep their temporal references with it)."""
        self._core = core
        self._rejections = RejectionLog(self.LOG_THROTTLE_S)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._worker = LatestFrameWorker(
            handle, name=f"imgcomp-{self.ROLE}",
            on_drop=core.stats.record_dropped, on_error=self._on_worker_error,
            on_skipped=on_skipped, keep_skipped=self.KEEP_SKIPPED,
        ).start()
        self._sub = self.create_subscription(
            input_type, input_topic, self._on_message, qos_profile_sensor_data,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self._diag_timer = self.create_timer(diagnostics_period_s, self._publish_diagnostics)

    def _catch_up(self, msgs: list[Any]) -> None:
        """`on_skipped` of the receiving nodes: the core keeps the skipped frames' references."""
        from imgcomp.stream import FeaturesFields

        self._core.catch_up([FeaturesFields.from_msg(m) for m in msgs])

    def _on_message(self, msg: Any) -> None:
        """Subscription callback: count the input, hand it to the latest-frame worker."""
        self._core.stats.record_input()
        self._worker.put(msg)

    def _rejected(self, result: object, what: str) -> bool:
        """True (after a throttled warning) when a core returned a Rejection for this frame."""
        if not isinstance(result, Rejection):
            return False
        line = self._rejections.report(result, what)
        if line:
            self.get_logger().warning(line)
        return True

    def _on_worker_error(self, exc: BaseException) -> None:
        if not self.context.ok():
            return  # Ctrl-C: the frame in flight could not be published; nothing to report
        self.get_logger().error(
            f"{self.ROLE} worker: {type(exc).__name__}: {exc}", throttle_duration_sec=self.LOG_THROTTLE_S
        )

    def _publish_diagnostics(self) -> None:
        level, message = self._core.status()
        values = self._core.diagnostics()
        values["backend"] = self._backend.used
        values["device"] = self._device.used
        self._diag_pub.publish(
            diagnostics_msg(self, f"{self.get_name()}: {self.ROLE}", level, message, values, self._device.used)
        )

    def destroy_node(self) -> None:
        self._worker.stop()
        super().destroy_node()
