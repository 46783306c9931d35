"""The analysis and synthesis transforms on ONNX Runtime (CPU, or CUDA where available), float or INT8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from imgcomp.inference.cache import build_once, model_cache_dir
from imgcomp.inference.graphs import GRAPH_FORMAT, META_FORMAT, META_HASH, export_onnx, graph_paths
from imgcomp.models.gained import GainedCodec


class GraphMismatchError(ValueError):
    """Exported graphs that do not belong to the loaded weights."""


def float_graphs(net: GainedCodec, model: str, model_hash: str, graphs_dir: Path | None = None) -> tuple[Path, Path]:
    """The float graphs in `graphs_dir`, or exported once into the cache."""
    if graphs_dir is None or not graph_paths(graphs_dir, model)[0].exists():
        graphs_dir = build_once(
            model_cache_dir(f"onnx-v{GRAPH_FORMAT}", model, model_hash), lambda tmp: export_onnx(net, model, model_hash, tmp)
        )
    return graph_paths(graphs_dir, model)


def int8_graphs(net: GainedCodec, model: str, model_hash: str, graphs_dir: Path | None = None) -> tuple[Path, Path]:
    """The INT8 graphs in `graphs_dir` (`imgcomp export --format onnx-int8`), or quantized once
    into the cache from the float graphs (a minute or so: calibration runs the float graphs)."""
    from imgcomp.inference.quantize import QUANT_FORMAT, calibration_id, int8_graph_paths, quantize_graphs

    if graphs_dir is not None and int8_graph_paths(graphs_dir, model)[0].exists():
        return int8_graph_paths(graphs_dir, model)
    float_analysis, _ = float_graphs(net, model, model_hash, graphs_dir)
    target = build_once(
        model_cache_dir(f"onnx-int8-v{GRAPH_FORMAT}.{QUANT_FORMAT}-{calibration_id()}", model, model_hash),
        lambda tmp: quantize_graphs(net, model, float_analysis.parent, tmp),
    )
    return int8_graph_paths(target, model)


def check_identity(path: Path, meta: dict[str, str], model_hash: str) -> None:
    """Refuse graphs exported from other weights or in another graph format."""
    if meta.get(META_HASH) != model_hash or meta.get(META_FORMAT) != GRAPH_FORMAT:
        raise GraphMismatchError(
            f"{path} was exported from weights {meta.get(META_HASH, '?')[:12]} (graph format "
            f"{meta.get(META_FORMAT, '?')}), but the loaded weights are {model_hash[:12]} "
            f"(format {GRAPH_FORMAT}): export again with `imgcomp export`"
        )


def level_gains(net: GainedCodec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per level, the gain and inverse gain as the graphs take them (1 x M x 1 x 1 float32)."""
    with torch.no_grad():
        gains = net.gain.abs().detach().float().cpu()
        inverse = net.inverse_gain.abs().detach().float().cpu()
    m = gains.shape[1]
    return [g.reshape(1, m, 1, 1).numpy() for g in gains], [g.reshape(1, m, 1, 1).numpy() for g in inverse]


def _providers(device: torch.device) -> list[str]:
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def as_numpy(t: Tensor) -> np.ndarray:
    """A float32 C-contiguous CPU array of `t`, without a copy where `t` already is one."""
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


class OnnxRuntimeTransforms:
    name = "onnxruntime"

    def __init__(
        self, net: GainedCodec, analysis: Path, synthesis: Path, model_hash: str, device: torch.device,
        threads: int = 0, name: str = "onnxruntime",
    ) -> None:
        self.net = net
        self.name = name
        options = ort.SessionOptions()
        # 0: as many as torch uses (torch's default is one per core; the nodes' `threads` sets both)
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        providers = _providers(device)
        self.sessions = {}
        self.graph_paths = {"analysis": analysis, "synthesis": synthesis}
        for role, path in (("analysis", analysis), ("synthesis", synthesis)):
            session = ort.InferenceSession(str(path), options, providers=providers)
            check_identity(path, session.get_modelmeta().custom_metadata_map, model_hash)
            self.sessions[role] = session
        self.provider = self.sessions["analysis"].get_providers()[0]
        self._gain, self._inverse_gain = level_gains(net)

    @classmethod
    def for_model(
        cls, net: GainedCodec, model: str, model_hash: str, device: torch.device, graphs_dir: Path | None = None,
        int8: bool = False, threads: int = 0,
    ) -> OnnxRuntimeTransforms:
        """Use the graphs in `graphs_dir`, or export (and quantize) them once into the cache."""
        analysis, synthesis = (int8_graphs if int8 else float_graphs)(net, model, model_hash, graphs_dir)
        return cls(net, analysis, synthesis, model_hash, device, threads, "onnxruntime-int8" if int8 else "onnxruntime")

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def analyse(self, x: Tensor, level_index: int) -> tuple[Tensor, Tensor | None]:
        outputs = self.sessions["analysis"].run(None, {"x": as_numpy(x), "gain": self._gain[level_index]})
        y = torch.from_numpy(outputs[0]).to(self._device())
        z = torch.from_numpy(outputs[1]).to(self._device()) if len(outputs) > 1 else None
        return y, z

    def synthesise(self, y_hat: Tensor, level_index: int) -> Tensor:
        (x_hat,) = self.sessions["synthesis"].run(None, {"y_hat": as_numpy(y_hat), "inverse_gain": self._inverse_gain[level_index]})
        return torch.from_numpy(x_hat).to(y_hat.device)
