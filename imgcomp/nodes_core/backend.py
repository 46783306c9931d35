"""Which inference backend and device a node can actually use, and why.

`imgcomp.codec.Codec` runs the model with torch today. A node still accepts the backends it is
meant to grow into (ONNX Runtime, TensorRT) so launch files and parameter files need not
change later; until `Codec` implements one, the request falls back to torch and the reason is
returned for the node to log once.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

__all__ = ["BACKENDS", "DEVICES", "Choice", "resolve_backend", "resolve_device", "set_cpu_threads"]

BACKENDS = ("torch", "onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda")
# Backends imgcomp.codec.Codec can run. Add one here when Codec learns it.
IMPLEMENTED_BACKENDS = ("torch",)
_MODULES = {"onnxruntime": "onnxruntime", "tensorrt": "tensorrt", "torch": "torch"}


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
    """The backend to use for `requested` (one of BACKENDS), with the reason."""
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested in IMPLEMENTED_BACKENDS:
        return Choice(requested, requested, "as requested")
    installed = importlib.util.find_spec(_MODULES[requested]) is not None
    why = (
        f"the {requested} package is installed, but imgcomp.codec.Codec has no {requested} path yet"
        if installed
        else f"the {requested} package is not installed, and imgcomp.codec.Codec has no {requested} path yet"
    )
    return Choice(requested, "torch", why)


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
    """Set torch's intra-op CPU threads for this process (0: leave torch's default).

    Returns a log line. On a CPU shared with other busy processes, several torch threads can be
    many times slower than one (measured on a 2-core machine running a training job: 2.2 s vs
    0.13 s to encode a 640x480 frame), so the nodes' parameter files set 1.
    """
    import torch

    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)
        return f"torch CPU threads: {torch.get_num_threads()} (torch_threads={threads})"
    return f"torch CPU threads: {torch.get_num_threads()} (torch's default)"
