"""Numeric precision of a training run (`imgcomp train --precision`).

* ``fp32``: everything in float32 (the default; what every shipped model was trained with);
* ``tf32``: on CUDA, matrix products and convolutions read their inputs as TF32 (10-bit
  mantissa) and accumulate in float32; everything else stays float32. Safe for the entropy
  models: their likelihoods, CDF bounds and rate terms are elementwise float32 work.
* ``bf16``: tf32 plus bfloat16 autocast around the networks' forward passes; losses are computed
  in float32 on the cast-back outputs. Only for models without an entropy model (the study's
  families, the multi-task heads): bfloat16's 8-bit mantissa would round the likelihoods that
  the rate term sums.

The exported weights are fp16 whatever the training precision (registry.export_weights).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def configure_precision(precision: str, device: str | torch.device, entropy_coded: bool) -> None:
    """Check `precision` for this model and set the backend flags it needs."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and entropy_coded:
        raise ValueError("bf16 would round the entropy model's likelihoods: use tf32 for an entropy-coded model")
    if torch.device(device).type == "cuda":
        fast = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = fast
        torch.backends.cudnn.allow_tf32 = fast
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: pick the fastest kernels once


def autocast(precision: str, device: str | torch.device) -> AbstractContextManager:
    """The context for a forward pass: bfloat16 autocast for ``bf16``, else nothing."""
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
