"""The nodes' start-up check: one line and exit status 1, not a traceback, when this install cannot
run a node the way its parameters ask. The checks themselves are `imgcomp.runtime_check`.

Importing this module checks what every node needs (numpy, OpenCV, torch, torchvision, CompressAI
and its rANS coder), so the node modules import it before anything that needs those. `checked`
then checks what the node's `device` and `backend` parameters ask for (CUDA, ONNX Runtime,
TensorRT), once rclpy has read the parameter files, overrides and remappings.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable

from imgcomp.runtime_check import exit_on_problems, problems

COMPUTE_PARAMS = {"device": "cpu", "backend": "torch"}


def program() -> str:
    return os.path.basename(sys.argv[0]) or "imgcomp node"


exit_on_problems(program(), problems())


def requested(node_name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The values of the parameters in `defaults` for a node named `node_name`, as rclpy resolves
    them for it, read through a short-lived probe node of that name (rclpy must be initialised)."""
    from rclpy.node import Node

    probe = Node(
        node_name,
        automatically_declare_parameters_from_overrides=True,
        start_parameter_services=False,
        enable_rosout=False,
    )
    try:
        return {
            name: probe.get_parameter(name).value if probe.has_parameter(name) else default
            for name, default in defaults.items()
        }
    finally:
        probe.destroy_node()


def checked(make_node: Callable[[], Any], node_name: str, specs: Iterable[Any]) -> Callable[[], Any]:
    """`make_node`, called only once the install can serve the node's device and backend.

    `node_name` is the name the node passes to rclpy; `specs` its ParamSpecs (for the defaults).
    Otherwise one line goes to stderr and SystemExit(1) leaves `run_node`, which shuts rclpy down."""
    defaults = {spec.name: spec.default for spec in specs if spec.name in COMPUTE_PARAMS}

    def make() -> Any:
        asked = {**COMPUTE_PARAMS, **requested(node_name, defaults)}
        exit_on_problems(program(), problems(device=str(asked["device"]), backend=str(asked["backend"])))
        return make_node()

    return make
