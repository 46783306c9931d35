"""Training distortions (the differentiable MS-SSIM lives in `imgcomp.metrics`, where the
encoder's effort mode uses it too)."""

from __future__ import annotations

from imgcomp.metrics import MS_SSIM_WEIGHTS, ms_ssim_per_sample

__all__ = ["MS_SSIM_WEIGHTS", "ms_ssim_per_sample"]
