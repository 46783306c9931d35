"""Which inference backend and device a node can actually use, and why.

`imgcomp.codec.Codec` runs its transforms on torch, ONNX Runtime or TensorRT. A request for a
backend that cannot run here falls back (tensorrt -> onnxruntime -> torch) and the reason is
returned for the node to log once; `codec_factory` also falls back when a backend fails to
load a model (e.g. an engine build error), so a node always comes up.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from imgcomp.defaults import BACKENDS, DEVICES

__all__ = ["BACKENDS", "DEVICES", "Choice", "codec_factory", "resolve_backend", "resolve_device", "set_cpu_threads"]



@dataclass(frozen=True)
class Choice:
    requested: str
    used: str
    reason: str

    @property
    def fell_back(self) -> bool:
        return self.requested != self.used

    def log_line(self, what: str) -> str:
        if self.fell_back:
            return f"{what} {self.requested!r} requested, using {self.used!r}: {self.reason}"
        return f"{what} {self.used!r}: {self.reason}"


def resolve_backend(requested: str) -> Choice:
    """The backend to use for `requested` (one of BACKENDS), with the reason: tensorrt falls back
    to onnxruntime without TensorRT or a GPU, openvino to onnxruntime without OpenVINO, and
    onnxruntime to torch without ONNX Runtime; an -int8 request keeps INT8 where it falls back
    to ONNX Runtime."""
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "torch":
        return Choice(requested, requested, "as requested")
    suffix = "-int8" if requested.endswith("-int8") else ""
    family = requested.removesuffix("-int8").removesuffix("-bf16")
    if family == "tensorrt":
        from imgcomp.inference.tensorrt_backend import tensorrt_unavailable_reason

        reason = tensorrt_unavailable_reason()
        if reason is None:
            what = "INT8 engines from the quantized graphs" if suffix else "FP16 engines"
            return Choice(requested, requested, f"as requested ({what}, built once and cached)")
    elif family == "openvino":
        from imgcomp.inference.openvino_backend import openvino_unavailable_reason

        reason = openvino_unavailable_reason()
        if reason is None and importlib.util.find_spec("onnxruntime") is None and suffix:
            reason = "the INT8 graphs are made with onnxruntime's quantization tools, and onnxruntime is not installed"
        if reason is None and requested.endswith("-bf16"):
            # a CPU without AVX-512 BF16 or AMX (e.g. an AVX2-only x86 or most Arm cores) runs the float graphs
            precision_reason = openvino_unavailable_reason("bf16")
            if precision_reason is not None:
                return Choice(requested, "openvino", precision_reason)
        if reason is None:
            return Choice(requested, requested, "as requested")
    elif importlib.util.find_spec("onnxruntime") is not None:
        return Choice(requested, requested, "as requested")
    else:
        return Choice(requested, "torch", "the onnxruntime package is not installed")
    fallback = resolve_backend("onnxruntime" + suffix)
    return Choice(requested, fallback.used, reason if not fallback.fell_back else f"{reason}; {fallback.reason}")


def codec_factory(
    backend: str, device: str, on_fallback: Callable[[str], None], graphs_dir: str = "", threads: int = 0
) -> Callable[[str], object]:
    """A `model name -> Codec` function for a node: `backend`, or torch if that fails to load.

    `on_fallback` gets one line saying why (the node logs it). `threads`: the intra-op threads of
    an ONNX Runtime or OpenVINO backend (the node's `threads` parameter; 0: torch's count)."""
    from pathlib import Path

    from imgcomp.codec import Codec

    def make(model: str) -> Codec:
        if backend == "torch":
            return Codec(model, device=device)
        try:
            return Codec(model, device=device, backend=backend, graphs_dir=Path(graphs_dir) if graphs_dir else None,
                         threads=threads)
        except Exception as exc:  # noqa: BLE001 - any load failure: keep serving with torch
            on_fallback(f"backend {backend!r} could not load {model!r} ({type(exc).__name__}: {exc}); using 'torch'")
            return Codec(model, device=device)

    return make


def resolve_device(requested: str) -> Choice:
    """"cuda" falls back to "cpu" when torch sees no CUDA device."""
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "cpu":
        return Choice("cpu", "cpu", "as requested")
    import torch

    if torch.cuda.is_available():
        return Choice("cuda", "cuda", f"as requested ({torch.cuda.get_device_name(0)})")
    return Choice("cuda", "cpu", "torch.cuda.is_available() is False (no CUDA device or a CPU-only torch)")


def set_cpu_threads(threads: int) -> str:
    """Set torch's intra-op CPU threads for this process (0: leave torch's default), and those of
    the classical codecs' libavif and libjxl (`imgcomp.classical.set_threads`).

    Returns a log line. On a CPU shared with other busy processes, several torch threads can be
    many times slower than one (measured on a 2-core machine running a training job: 2.2 s vs
    0.13 s to encode a 640x480 frame), so the nodes' parameter files set 1.
    """
    import torch

    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads:
        from imgcomp.classical import set_threads

        torch.set_num_threads(threads)
        set_threads(threads)  # the classical codecs' libavif and libjxl, likewise
        return f"torch CPU threads: {torch.get_num_threads()} (threads={threads})"
    return f"torch CPU threads: {torch.get_num_threads()} (torch's default)"
