"""The analysis and synthesis transforms on ONNX Runtime (CPU, or CUDA where available)."""

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


def _providers(device: torch.device) -> list[str]:
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeTransforms:
    name = "onnxruntime"

    def __init__(self, net: GainedCodec, analysis: Path, synthesis: Path, model_hash: str, device: torch.device) -> None:
        self.net = net
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        providers = _providers(device)
        self.sessions = {}
        for role, path in (("analysis", analysis), ("synthesis", synthesis)):
            session = ort.InferenceSession(str(path), options, providers=providers)
            meta = session.get_modelmeta().custom_metadata_map
            if meta.get(META_HASH) != model_hash or meta.get(META_FORMAT) != GRAPH_FORMAT:
                raise GraphMismatchError(
                    f"{path} was exported from weights {meta.get(META_HASH, '?')[:12]} (graph format "
                    f"{meta.get(META_FORMAT, '?')}), but the loaded weights are {model_hash[:12]} "
                    f"(format {GRAPH_FORMAT}): export again with `imgcomp export`"
                )
            self.sessions[role] = session
        self.provider = self.sessions["analysis"].get_providers()[0]
        with torch.no_grad():
            gains = net.gain.abs().detach().float().cpu()
            inverse = net.inverse_gain.abs().detach().float().cpu()
        m = gains.shape[1]
        self._gain = [g.reshape(1, m, 1, 1).numpy() for g in gains]
        self._inverse_gain = [g.reshape(1, m, 1, 1).numpy() for g in inverse]

    @classmethod
    def for_model(
        cls, net: GainedCodec, model: str, model_hash: str, device: torch.device, graphs_dir: Path | None = None
    ) -> OnnxRuntimeTransforms:
        """Use the graphs in `graphs_dir`, or export them once into the cache."""
        if graphs_dir is None or not graph_paths(graphs_dir, model)[0].exists():
            graphs_dir = build_once(
                model_cache_dir("onnx", model, model_hash), lambda tmp: export_onnx(net, model, model_hash, tmp)
            )
        analysis, synthesis = graph_paths(graphs_dir, model)
        return cls(net, analysis, synthesis, model_hash, device)

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def analyse(self, x: Tensor, level: int) -> tuple[Tensor, Tensor | None]:
        outputs = self.sessions["analysis"].run(
            None, {"x": np.ascontiguousarray(x.detach().float().cpu().numpy()), "gain": self._gain[level]}
        )
        y = torch.from_numpy(outputs[0]).to(self._device())
        z = torch.from_numpy(outputs[1]).to(self._device()) if len(outputs) > 1 else None
        return y, z

    def synthesise(self, y_hat: Tensor, level: int) -> Tensor:
        (x_hat,) = self.sessions["synthesis"].run(
            None,
            {"y_hat": np.ascontiguousarray(y_hat.detach().float().cpu().numpy()), "inverse_gain": self._inverse_gain[level]},
        )
        return torch.from_numpy(x_hat).to(y_hat.device)
