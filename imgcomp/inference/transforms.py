"""The `Transforms` interface and its torch implementation; `make_transforms` picks a backend."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from imgcomp.defaults import BACKENDS
from imgcomp.models.gained import GainedCodec


class Transforms(Protocol):
    name: str

    def analyse(self, x: Tensor, level_index: int) -> tuple[Tensor, Tensor | None]:
        """Padded image (1x3xHxW, 0..1) -> gained latent y and hyper-latent z (None: factorized)."""

    def synthesise(self, y_hat: Tensor, level_index: int) -> Tensor:
        """Quantized gained latent -> image (1x3xHxW, not clamped)."""


class TorchTransforms:
    """The transforms in torch. On the CPU they run channels-last (NHWC): oneDNN's convolutions
    then skip a layout reorder per layer (g_a 2.0x, g_s 1.6x faster at 640x480 with 2 threads:
    scripts/layout_ab.py); the results differ from NCHW only by float rounding (about 3e-7 for
    pixels). Only the layout of g_a's and g_s's weights changes, so the hyperprior and entropy
    model, which decide the coded integers, are untouched."""

    name = "torch"

    def __init__(self, net: GainedCodec) -> None:
        self.net = net
        self.layout = torch.channels_last if _on_cpu(net) else torch.contiguous_format
        for transform in (getattr(net, "g_a", None), getattr(net, "g_s", None)):  # none in the study's fixed-rate nets
            if transform is not None:
                transform.to(memory_format=self.layout)

    @torch.no_grad()
    def analyse(self, x: Tensor, level_index: int) -> tuple[Tensor, Tensor | None]:
        y, z = self.net.analyse_for_coding(x.contiguous(memory_format=self.layout), level_index)
        return y.contiguous(), None if z is None else z.contiguous()

    @torch.no_grad()
    def synthesise(self, y_hat: Tensor, level_index: int) -> Tensor:
        return self.net.synthesise(y_hat.contiguous(memory_format=self.layout), level_index).contiguous()


def _on_cpu(net: torch.nn.Module) -> bool:
    return next(net.parameters()).device.type == "cpu"


def make_transforms(
    backend: str, net: GainedCodec, model: str, model_hash: str, device: torch.device, graphs_dir: Path | None = None,
    threads: int = 0,
) -> Transforms:
    """The transforms of `net` on `backend`; exported graphs are made (and cached) on first use.

    `threads`: intra-op CPU threads of an ONNX Runtime or OpenVINO backend (0: as many as torch
    uses); the torch backend uses torch's process-wide setting (`torch.set_num_threads`)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    int8 = backend.endswith("-int8")
    if backend == "torch":
        return TorchTransforms(net)
    if backend.startswith("onnxruntime"):
        from imgcomp.inference.onnx_backend import OnnxRuntimeTransforms

        return OnnxRuntimeTransforms.for_model(net, model, model_hash, device, graphs_dir, int8=int8, threads=threads)
    if backend.startswith("openvino"):
        from imgcomp.inference.openvino_backend import OpenVinoTransforms

        precision = backend.removeprefix("openvino").removeprefix("-") or "f32"
        return OpenVinoTransforms.for_model(net, model, model_hash, graphs_dir, precision=precision, threads=threads)
    from imgcomp.inference.tensorrt_backend import TensorRTTransforms

    return TensorRTTransforms.for_model(net, model, model_hash, device, graphs_dir, int8=int8)
