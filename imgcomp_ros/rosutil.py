"""rclpy helpers shared by the imgcomp nodes: parameters from specs, QoS, diagnostics.

Everything here is glue; the logic it glues lives in `imgcomp.stream`. The node base that uses
it is `imgcomp_ros.node_base.CodecNodeMixin`.
"""

from __future__ import annotations

import array
import signal
from typing import Any, Callable, Iterable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from imgcomp.stream import Choice, ImageFields, resolve_backend, resolve_device, set_cpu_threads
from imgcomp.stream.params import ParamSpec, check

# Publishers of the nodes: reliable, small depth (a late frame is worth less than a new one).
OUTPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
DIAGNOSTICS_TOPIC = "/diagnostics"


def image_msg(header: Any, f: ImageFields) -> Image:
    """A sensor_msgs/Image from core output fields, under the source message's header (stamp and
    frame_id pass through)."""
    out = Image()
    out.header = header
    out.height = f.height
    out.width = f.width
    out.encoding = f.encoding
    out.is_bigendian = f.is_bigendian
    out.step = f.step
    out.data = array.array("B", f.data)  # from bytes: one memcpy, no per-element checks
    return out


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ParameterDescriptor of a spec: description, range (enforced by rclpy), read-only."""
    desc = ParameterDescriptor(
        description=spec.description,
        read_only=spec.read_only,
        additional_constraints=spec.constraints,
    )
    if spec.low is not None and spec.high is not None:
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
        elif isinstance(spec.default, float):
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
            ]
    return desc


def declare(node: Node, specs: Iterable[ParamSpec]) -> dict[str, object]:
    """Declare every spec and return the values in effect (defaults, files, overrides)."""
    values = {}
    for spec in specs:
        node.declare_parameter(spec.name, spec.default, descriptor(spec))
        values[spec.name] = node.get_parameter(spec.name).value
    return values


def check_values(node: Node, specs: Iterable[ParamSpec]) -> None:
    """Fail start-up with a clear message when a parameter file sets a meaningless value."""
    for spec in specs:
        error = check(spec, node.get_parameter(spec.name).value)
        if error:
            raise ValueError(f"parameter {error}")


def add_parameter_callbacks(
    node: Node,
    validate: Callable[[list[Parameter]], str | None],
    apply: Callable[[list[Parameter]], None],
) -> None:
    """Validate in the on-set callback; apply only once the change is accepted.

    Jazzy (and Iron) have post-set callbacks for the "apply" half. Humble has not: there the
    change is applied at the end of the on-set callback, after every check has passed.
    """
    post_set = getattr(node, "add_post_set_parameters_callback", None)

    def on_set(params: list[Parameter]) -> SetParametersResult:
        reason = validate(params)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        if post_set is None:
            apply(params)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    if post_set is not None:
        post_set(apply)


_LEVELS = {
    0: DiagnosticStatus.OK,
    1: DiagnosticStatus.WARN,
    2: DiagnosticStatus.ERROR,
    3: DiagnosticStatus.STALE,
}


def diagnostics_msg(node: Node, name: str, level: int, message: str, values: dict[str, str],
                    hardware_id: str = "") -> DiagnosticArray:
    status = DiagnosticStatus()
    status.level = _LEVELS[level]  # a `byte` field: bytes in rclpy, hence the table
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
    array = DiagnosticArray()
    array.header.stamp = node.get_clock().now().to_msg()
    array.status = [status]
    return array


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Init, spin until Ctrl-C or external shutdown, and always clean up (Humble and Jazzy)."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C reaches the node twice (from the terminal or `timeout`, and from ros2 launch):
        # the second SIGINT must not interrupt the cleanup with another KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def setup_compute(node: Node, params: dict) -> tuple[Choice, Choice]:
    """Resolve backend and device (with fallbacks), log which are used and why, set CPU threads."""
    log = node.get_logger()
    backend, device = resolve_backend(params["backend"]), resolve_device(params["device"])
    for what, choice in (("backend", backend), ("device", device)):
        # one severity per call site: Humble's rclpy raises when a line logs at two
        if choice.fell_back:
            log.warning(choice.log_line(what))
        else:
            log.info(choice.log_line(what))
    log.info(set_cpu_threads(params["threads"]))
    return backend, device
