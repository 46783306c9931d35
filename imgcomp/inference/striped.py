"""Run the transforms on horizontal stripes so large frames stay within a fixed memory budget.

The analysis and synthesis transforms are stacks of 5x5 convolutions (and GDN, which is local
across channels), so an output row depends only on a few latent rows around it. A stripe is
computed with `HALO_LATENT_ROWS` extra latent rows (x16 pixel rows for the analysis) on each side
that cover that receptive field, and the halo is cropped away. Results match the whole-frame
transforms up to float summation order: the entropy-coded integers never depend on it on the
decode side (the decoder runs synthesis only after the latent is recovered exactly), and on the
encode side a last-digit difference in y can at most move a value by one quantization step.

Frames up to `STRIPE_ABOVE_PIXELS` run whole, as before, so ordinary camera frames pay nothing.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

STRIPE_ABOVE_PIXELS = 1920 * 1088  # whole-frame up to 1080p (padded); striped beyond
STRIPE_LATENT_ROWS = 16  # latent rows computed per stripe (256 image rows)
HALO_LATENT_ROWS = 4  # receptive field of the 4-layer 5x5/stride-2 stacks is under 4 latent rows
LATENT_SCALE = 16  # image rows per latent row (g_a and g_s)


def needs_stripes(height: int, width: int) -> bool:
    return height * width > STRIPE_ABOVE_PIXELS


def _stripes(rows: int) -> list[tuple[int, int]]:
    return [(start, min(rows, start + STRIPE_LATENT_ROWS)) for start in range(0, rows, STRIPE_LATENT_ROWS)]


def synthesise_to_uint8(
    synthesise: Callable[[Tensor], Tensor], y_hat: Tensor, height: int, width: int, channels: int = 3
) -> Tensor:
    """y_hat (1 x M x h x w) -> uint8 image (channels x height x width, cropped) on the CPU, stripe by stripe."""
    rows = y_hat.shape[-2]
    out = torch.empty((channels, height, width), dtype=torch.uint8)
    for start, stop in _stripes(rows):
        lo, hi = max(0, start - HALO_LATENT_ROWS), min(rows, stop + HALO_LATENT_ROWS)
        x = synthesise(y_hat[:, :, lo:hi])
        top = (start - lo) * LATENT_SCALE
        stripe = x[0, :, top : top + (stop - start) * LATENT_SCALE, :width]
        first = start * LATENT_SCALE
        last = min(height, stop * LATENT_SCALE)
        out[:, first:last] = to_uint8(stripe[:, : last - first], channels).cpu()
    return out


def analyse_striped(analyse: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Padded image (1 x 3 x H x W, H a multiple of 16) -> g_a output, stripe by stripe."""
    rows = x.shape[-2] // LATENT_SCALE
    parts = []
    for start, stop in _stripes(rows):
        lo, hi = max(0, start - HALO_LATENT_ROWS), min(rows, stop + HALO_LATENT_ROWS)
        y = analyse(x[:, :, lo * LATENT_SCALE : hi * LATENT_SCALE])
        parts.append(y[:, :, start - lo : start - lo + stop - start])
    return torch.cat(parts, dim=2)


def to_uint8(x: Tensor, channels: int = 3) -> Tensor:
    """Synthesis output (3 x H x W, 0..1, unclamped) -> uint8 (channels x H x W): the codec's one
    rounding rule; a mono source gets the mean of the clamped colour channels."""
    x = x.clamp(0, 1)
    if channels == 1:
        x = x.mean(0, keepdim=True)
    return x.mul(255.0).round_().to(torch.uint8)
