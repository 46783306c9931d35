"""The `Transforms` interface and its torch implementation; `make_transforms` picks a backend."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from imgcomp.defaults import BACKENDS  # noqa: F401 - re-exported by imgcomp.inference
from imgcomp.models.gained import GainedCodec


class Transforms(Protocol):
    name: str

    def analyse(self, x: Tensor, level: int) -> tuple[Tensor, Tensor | None]:
        """Padded image (1x3xHxW, 0..1) -> gained latent y and hyper-latent z (None: factorized)."""

    def synthesise(self, y_hat: Tensor, level: int) -> Tensor:
        """Quantized gained latent -> image (1x3xHxW, not clamped)."""


class TorchTransforms:
    name = "torch"

    def __init__(self, net: GainedCodec) -> None:
        self.net = net

    @torch.no_grad()
    def analyse(self, x: Tensor, level: int) -> tuple[Tensor, Tensor | None]:
        return self.net.analyse_for_coding(x, level)

    @torch.no_grad()
    def synthesise(self, y_hat: Tensor, level: int) -> Tensor:
        return self.net.synthesise(y_hat, level)


def make_transforms(
    backend: str, net: GainedCodec, model: str, model_hash: str, device: torch.device, graphs_dir: Path | None = None
) -> Transforms:
    """The transforms of `net` on `backend`; exported graphs are made (and cached) on first use."""
    if backend == "torch":
        return TorchTransforms(net)
    if backend == "onnxruntime":
        from imgcomp.inference.onnx_backend import OnnxRuntimeTransforms

        return OnnxRuntimeTransforms.for_model(net, model, model_hash, device, graphs_dir)
    if backend == "tensorrt":
        from imgcomp.inference.tensorrt_backend import TensorRTTransforms

        return TensorRTTransforms.for_model(net, model, model_hash, device, graphs_dir)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
