"""Training distortions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
from torch import Tensor

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_per_sample(x: Tensor, y: Tensor, window: int = 7, data_range: float = 1.0) -> Tensor:
    """MS-SSIM per sample, safe to differentiate.

    pytorch_msssim clips negative contrast terms to 0 with relu and then raises them to
    fractional powers, whose gradient at 0 is infinite: a single flat, badly reconstructed
    patch turns the whole step into NaN. Flooring the terms at a small positive value keeps
    the same value almost everywhere and a finite gradient.
    """
    win = _fspecial_gauss_1d(window, 1.5).to(x).repeat([x.shape[1], 1, 1, 1])
    weights = x.new_tensor(MS_SSIM_WEIGHTS)
    terms = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        ssim_per_channel, cs = _ssim(x, y, data_range=data_range, win=win, size_average=False)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            terms.append(cs.clamp_min(1e-4))
            padding = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    terms.append(ssim_per_channel.clamp_min(1e-4))
    stacked = torch.stack(terms, dim=0)  # (level, batch, channel)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(1)
