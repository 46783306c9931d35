"""The analysis and synthesis transforms on OpenVINO's CPU plugin, float or INT8.

OpenVINO reads the same ONNX graphs as ONNX Runtime (the INT8 ones are QDQ graphs, which it runs
with INT8 kernels); `openvino-bf16` runs the float graphs at bfloat16 on CPUs that have it
(AVX-512 BF16 or AMX), with float32 accumulation. Where it wins on a CPU is GDN: its plugin fuses the elementwise square,
square root and division into the convolutions around them, where ONNX Runtime runs each as a
separate pass over the activations (measured, docs/cpu.md). Float graphs are run at float32
precision: on CPUs with bfloat16 units OpenVINO would otherwise pick bfloat16 by itself.

Needs the `openvino` package (requirements-robot.txt); `openvino_unavailable_reason` says
when it is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imgcomp.inference.graphs import read_graph_identity
from imgcomp.inference.errors import BackendUnavailable
from imgcomp.inference.onnx_backend import as_numpy, check_identity, float_graphs, int8_graphs, level_gains
from imgcomp.models.gained import GainedCodec


def openvino_unavailable_reason(precision: str = "f32") -> str | None:
    """Why OpenVINO's CPU plugin cannot run at `precision` here (None: it can)."""
    if importlib.util.find_spec("openvino") is None:
        return "the openvino Python package is not installed (`pip install -r requirements-robot.txt`)"
    if precision == "f32":
        return None
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if precision.upper() not in capabilities:
        return f"OpenVINO has no {precision} on this CPU (it has {', '.join(capabilities)})"
    return None


class OpenVinoTransforms:
    name = "openvino"

    def __init__(self, net: GainedCodec, analysis: Path, synthesis: Path, model_hash: str, threads: int = 0,
                 name: str = "openvino", precision: str = "f32") -> None:
        import openvino as ov

        self.net = net
        self.name = name
        core = ov.Core()
        reason = openvino_unavailable_reason(precision)
        if reason is not None:
            raise BackendUnavailable(f"{reason}: use backend openvino")
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
        }
        self._requests = {}
        for role, path in (("analysis", analysis), ("synthesis", synthesis)):
            check_identity(path, read_graph_identity(path), model_hash)
            self._requests[role] = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
        self._gain, self._inverse_gain = level_gains(net)

    @classmethod
    def for_model(cls, net: GainedCodec, model: str, model_hash: str, graphs_dir: Path | None = None,
                  precision: str = "f32", threads: int = 0) -> OpenVinoTransforms:
        """`precision`: "f32", "bf16" (the float graphs at bfloat16, on CPUs that have it) or "int8"."""
        analysis, synthesis = (int8_graphs if precision == "int8" else float_graphs)(net, model, model_hash, graphs_dir)
        name = "openvino" if precision == "f32" else f"openvino-{precision}"
        return cls(net, analysis, synthesis, model_hash, threads, name, "f32" if precision == "int8" else precision)

    def _run(self, role: str, feeds: dict[str, np.ndarray]) -> list[Tensor]:
        request = self._requests[role]
        request.infer(feeds)
        # the request reuses its output buffers: copy before the next call
        return [torch.from_numpy(np.array(request.get_output_tensor(i).data)) for i in range(len(request.model_outputs))]

    def analyse(self, x: Tensor, level_index: int) -> tuple[Tensor, Tensor | None]:
        outputs = self._run("analysis", {"x": as_numpy(x), "gain": self._gain[level_index]})
        device = next(self.net.parameters()).device
        return outputs[0].to(device), (outputs[1].to(device) if len(outputs) > 1 else None)

    def synthesise(self, y_hat: Tensor, level_index: int) -> Tensor:
        (x_hat,) = self._run("synthesis", {"y_hat": as_numpy(y_hat), "inverse_gain": self._inverse_gain[level_index]})
        return x_hat.to(y_hat.device)
